// The page: loads config.json, routes #/ (runs) and #/run/<account> (a run),
// keeps the wallet's account, and re-reads the chain after every transaction.
import { RunChain } from "./chain.js";
import { reason } from "./errors.js";
import { esc } from "./format.js";
import { connectPrompt, depositPreview, loadMe, panelTx, renderMe, txStatus } from "./me-panel.js";
import { loadRun, renderRun } from "./run-page.js";
import { loadRuns, renderRuns } from "./runs-page.js";
import { Wallet } from "./wallet.js";

const main = document.querySelector("main");
const state = { config: null, chain: null, wallet: null, account: null, run: null, me: null, tx: null };

async function start() {
  const response = await fetch("config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json could not be loaded (HTTP ${response.status})`);
  state.config = await response.json();
  state.chain = new RunChain(state.config.rpcUrl);
  document.querySelector("[data-testid=network]").textContent = state.config.network;
  state.wallet = new Wallet(state.config, (account) => {
    state.account = account;
    renderHeader();
    if (state.run) refreshRun();
  });
  renderHeader();
  window.addEventListener("hashchange", route);
  await route();
}

function renderHeader() {
  const slot = document.querySelector("[data-testid=wallet]");
  slot.innerHTML = state.account
    ? `<span class="account">${esc(state.account)}</span>`
    : `<button type="button" data-action="connect">Connect wallet</button>`;
}

async function route() {
  const match = /^#\/run\/(.+)$/.exec(location.hash);
  state.tx = null;
  if (match) {
    state.run = decodeURIComponent(match[1]);
    main.innerHTML = `<p class="muted" role="status">Loading ${esc(state.run)}…</p>`;
    await refreshRun();
  } else {
    state.run = null;
    main.innerHTML = `<p class="muted" role="status">Loading runs…</p>`;
    try {
      main.innerHTML = renderRuns(state.config.factory, await loadRuns(state.chain, state.config.factory));
    } catch (e) {
      showError(`The runs of ${state.config.factory} could not be read: ${reason(e)}.`);
    }
  }
}

/** Re-reads the run (and the account's part) and redraws, keeping focus and typed text. */
async function refreshRun() {
  const run = state.run;
  try {
    const data = await loadRun(state.chain, run);
    data.config = state.config;
    const me = state.account ? await loadMe(state.chain, run, state.account) : null;
    if (state.run !== run) return;
    state.data = data;
    state.me = me;
    const typed = main.querySelector("#amount")?.value ?? "";
    const focused = document.activeElement?.dataset?.action ?? document.activeElement?.id;
    main.innerHTML = renderRun(data, me ? renderMe(me, data, state.tx) : connectPrompt());
    const amount = main.querySelector("#amount");
    if (amount) amount.value = typed;
    updatePreview();
    const again = focused && main.querySelector(`[data-action="${focused}"], #${CSS.escape(focused)}`);
    if (again && !again.disabled) again.focus();
  } catch (e) {
    showError(`The run ${run} could not be read: ${reason(e)}.`);
  }
}

function showError(text) {
  main.innerHTML = `<div class="card error" role="alert"><p>${esc(text)}</p><p><a href="#/">Back to all runs</a></p></div>`;
}

function updatePreview() {
  const out = main.querySelector("[data-testid=preview]");
  const amount = main.querySelector("#amount");
  if (out && amount && state.me) out.textContent = depositPreview(amount.value, state.me, state.data);
}

async function act(kind, form) {
  if (kind === "connect") {
    await state.wallet.connect().catch((e) => console.info("wallet not connected:", reason(e)));
    return;
  }
  if (kind === "disconnect") return state.wallet.disconnect();
  const tx = panelTx(kind, state.run, form);
  if (!tx) {
    state.tx = { kind, state: "failed", error: "type an amount in NEAR, like 5 or 0.25", hash: null };
    return refreshRun();
  }
  for (const b of main.querySelectorAll("#me button")) b.disabled = true;
  await state.wallet.send(tx, (s) => {
    state.tx = { kind, ...s };
    // The outcome is drawn by the refresh below, together with the balances it changed.
    const slot = main.querySelector("[data-testid=tx]");
    if (slot && s.state === "signing") slot.outerHTML = txStatus(state.tx, state.config);
  });
  await refreshRun();
}

document.addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (button && !button.disabled) act(button.dataset.action, null);
});
document.addEventListener("submit", (e) => {
  const form = e.target.closest("form[data-action]");
  if (!form) return;
  e.preventDefault();
  act(form.dataset.action, form);
});
document.addEventListener("input", (e) => {
  if (e.target.id === "amount") updatePreview();
});

start().catch((e) => showError(reason(e)));
