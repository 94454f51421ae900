// The factory's runs, each with its phase and funding progress.
import { esc } from "./format.js";
import { phaseBadge, progressBar } from "./run-page.js";

/** Reads every run of the factory with its funding status. */
export async function loadRuns(chain, factory) {
  const runs = await chain.runs(factory);
  const funding = await Promise.all(runs.map((r) => chain.fundingStatus(r.account_id).catch(() => null)));
  return runs.map((r, i) => ({ ...r, funding: funding[i] }));
}

/** The runs list as HTML. */
export function renderRuns(factory, runs) {
  const items = runs
    .slice()
    .reverse()
    .map((r) => `<li class="card run-item">
      <h2><a href="#/run/${encodeURIComponent(r.account_id)}" class="account">${esc(r.account_id)}</a>
        ${r.funding ? phaseBadge(r.funding.phase) : ""}</h2>
      ${r.funding ? progressBar(r.funding.raised, r.funding.goal) : '<p class="muted">Funding status unavailable.</p>'}
      <p class="muted">Created by <span class="account">${esc(r.creator)}</span> on ${new Date(Number(r.created_at_ms)).toISOString().slice(0, 10)}</p>
    </li>`)
    .join("");
  return `<h1>Training runs</h1>
    <p class="muted">Runs created by the factory <span class="account">${esc(factory)}</span>, newest first.</p>
    ${runs.length ? `<ul class="runs">${items}</ul>` : '<p>No runs yet.</p>'}`;
}
