// A run: funding, rounds with their checkpoints, receipts and losses, providers
// and their credited tokens, the treasury. The Me panel is in me-panel.js.
import { lossChart } from "./loss-chart.js";
import { deadline, esc, nearShort, shortHash } from "./format.js";

const PHASE_WORDS = { Open: "Funding open", Funded: "Funded", Failed: "Goal missed: refunds open" };

/** A phase badge. */
export const phaseBadge = (phase) => `<span class="badge phase-${esc(phase).toLowerCase()}">${esc(PHASE_WORDS[phase] ?? phase)}</span>`;

/** A funding progress bar with its numbers in words (for screen readers too). */
export function progressBar(raised, goal) {
  const pct = BigInt(goal) === 0n ? 100 : Number((BigInt(raised) * 1000n) / BigInt(goal)) / 10;
  return `<div class="progress">
    <progress max="100" value="${Math.min(100, pct)}" aria-label="Raised ${nearShort(raised)} of ${nearShort(goal)} NEAR">${pct} %</progress>
    <span>${nearShort(raised)} of ${nearShort(goal)} NEAR (${pct.toFixed(1)} %)</span>
  </div>`;
}

/** Loads everything the run page shows (except the connected account's part). */
export async function loadRun(chain, run) {
  const [now, info, funding, treasury, providers] = await Promise.all([
    chain.now().catch(() => Date.now()),
    chain.runInfo(run),
    chain.fundingStatus(run),
    chain.treasury(run),
    chain.providers(run),
  ]);
  const rounds = await chain.rounds(run, info);
  return { run, now, info, funding, treasury, providers, rounds };
}

function mean(values) {
  const v = values.filter((x) => typeof x === "number" && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

// Receipts report the training loss at the first and last inner step; a held-out
// loss appears under one of these names once the contract carries it.
const heldOut = (r) => r.heldout_loss ?? r.held_out_loss ?? r.eval_loss ?? null;

function roundRows(rounds) {
  const fmt = (v) => (v == null ? "–" : v.toFixed(4));
  return rounds
    .slice()
    .reverse()
    .map(({ round, status, checkpoint, receipts }) => `<tr>
        <th scope="row">${round}</th>
        <td>${esc(status)}</td>
        <td><code title="${esc(checkpoint ?? "")}">${checkpoint ? esc(shortHash(checkpoint)) : "–"}</code></td>
        <td>${receipts.length}</td>
        <td>${fmt(mean(receipts.map((r) => r.loss_start)))} → ${fmt(mean(receipts.map((r) => r.loss_end)))}</td>
        <td>${fmt(mean(receipts.map(heldOut)))}</td>
        <td>${receipts.reduce((a, r) => a + Number(r.tokens), 0).toLocaleString("en-US")}</td>
      </tr>`)
    .join("");
}

/** Tokens credited to each provider over the rounds shown (pending or settled, not disputed). */
function creditedTokens(rounds) {
  const credited = new Map();
  for (const { credits } of rounds) for (const c of credits) credited.set(c.provider, (credited.get(c.provider) ?? 0) + c.tokens);
  return credited;
}

const providerStatus = (s) => (typeof s === "string" ? s : Object.keys(s)[0]);

/** The run page's sections, as HTML; `me` is the Me panel's HTML (or a connect prompt). */
export function renderRun(data, me) {
  const { run, now, info, funding, treasury, providers, rounds } = data;
  const credited = creditedTokens(rounds);
  const chartPoints = rounds.map(({ round, receipts }) => {
    return {
      round,
      series: {
        "training loss (end of round)": mean(receipts.map((r) => r.loss_end)),
        "held-out loss": mean(receipts.map(heldOut)),
      },
    };
  });
  const t = treasury;
  const money = [
    ["Treasury (left for compute)", t.treasury],
    ["Raised", t.raised],
    ["Refunded", t.refunded],
    ["Compute paid to providers", t.compute_paid],
    ["Revenue paid in", t.revenue_in],
    ["Royalties claimed", t.royalties_claimed],
    ["Provider bonds held", t.bonds_held],
    ["Storage held", t.storage_held],
  ];
  return `
  <nav class="crumbs"><a href="#/">All runs</a> › <span>${esc(run)}</span></nav>
  <h1 class="run-title"><span class="account">${esc(run)}</span> ${phaseBadge(funding.phase)}${info.paused ? ' <span class="badge">paused by its owner</span>' : ""}${info.closed ? ' <span class="badge">closed</span>' : ""}</h1>
  <div class="grid">
    <section aria-labelledby="funding-h" class="card" id="funding">
      <h2 id="funding-h">Funding</h2>
      ${progressBar(funding.raised, funding.goal)}
      <dl class="facts">
        <dt>Goal</dt><dd data-testid="goal">${nearShort(funding.goal)} NEAR</dd>
        <dt>Raised</dt><dd data-testid="raised">${nearShort(funding.raised)} NEAR</dd>
        <dt>Deadline</dt><dd>${esc(deadline(funding.deadline_ms, now))}</dd>
        <dt>Minimum deposit</dt><dd>${nearShort(info.config.min_deposit)} NEAR</dd>
        <dt>Shares outstanding</dt><dd>${nearShort(info.total_supply)}</dd>
        <dt>Owner</dt><dd class="account">${esc(info.config.owner)}</dd>
      </dl>
    </section>
    <section aria-labelledby="me-h" class="card" id="me">
      <h2 id="me-h">Me</h2>
      ${me}
    </section>
  </div>
  <section aria-labelledby="rounds-h" class="card" id="rounds">
    <h2 id="rounds-h">Rounds</h2>
    <p>Last finalized round: <strong>${info.last_finalized_round}</strong>; training continues from checkpoint
      <code title="${esc(info.checkpoint.hash)}">${esc(shortHash(info.checkpoint.hash))}</code>.</p>
    ${lossChart(chartPoints, { "training loss (end of round)": "#2563eb", "held-out loss": "#d97706" })}
    ${rounds.length === 0 ? '<p class="muted">No receipts posted yet.</p>' : `
    <div class="scroll"><table>
      <caption class="sr-only">Rounds, newest first</caption>
      <thead><tr><th scope="col">Round</th><th scope="col">Status</th><th scope="col">Checkpoint</th><th scope="col">Receipts</th>
        <th scope="col">Training loss (start → end)</th><th scope="col">Held-out loss</th><th scope="col">Tokens</th></tr></thead>
      <tbody>${roundRows(rounds)}</tbody>
    </table></div>`}
  </section>
  <div class="grid">
    <section aria-labelledby="providers-h" class="card" id="providers">
      <h2 id="providers-h">Providers</h2>
      ${providers.length === 0 ? '<p class="muted">No provider has registered yet.</p>' : `
      <div class="scroll"><table>
        <thead><tr><th scope="col">Provider</th><th scope="col">Status</th><th scope="col">Bond (NEAR)</th><th scope="col">Credited tokens</th></tr></thead>
        <tbody>${providers.map((p) => `<tr><th scope="row" class="account">${esc(p.account_id)}</th><td>${esc(providerStatus(p.status))}</td>
          <td>${nearShort(p.bond)}</td><td>${(credited.get(p.account_id) ?? 0).toLocaleString("en-US")}</td></tr>`).join("")}</tbody>
      </table></div>`}
    </section>
    <section aria-labelledby="treasury-h" class="card" id="treasury">
      <h2 id="treasury-h">Treasury</h2>
      <dl class="facts">${money.map(([k, v]) => `<dt>${k}</dt><dd>${nearShort(v)} NEAR</dd>`).join("")}</dl>
    </section>
  </div>`;
}
