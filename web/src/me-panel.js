// "Me": the connected account's shares, pending payments and storage, and the
// deposit / claim / refund buttons with the state of the transaction in flight.
import { claimTx, depositTx, refundTx, retryPayoutTx } from "./chain.js";
import { esc, nearExact, nearShort, parseNear, percent } from "./format.js";

/** Reads what the Me panel shows for `account`. */
export async function loadMe(chain, run, account) {
  const [shares, supply, pending, storage, balance, payoutOwed] = await Promise.all([
    chain.shares(run, account),
    chain.totalSupply(run),
    chain.pending(run, account),
    chain.storageDeposit(run, account),
    chain.balance(account).catch(() => null),
    chain.payoutOwed(run, account),
  ]);
  return { account, shares, supply, pending, storage, balance, payoutOwed };
}

/** The panel for a visitor with no wallet connected. */
export const connectPrompt = () =>
  `<p>Connect a NEAR wallet to see your shares and to deposit, claim or refund.</p>
   <button type="button" data-action="connect">Connect wallet</button>`;

/** The panel for a connected account; `tx` is the last transaction's state. */
export function renderMe(me, data, tx) {
  const { funding, info } = data;
  const firstDeposit = me.storage === null;
  const storageCost = BigInt(funding.storage_cost);
  const pendingTotal = me.pending.royalties + me.pending.computePayments;
  const open = funding.phase !== "Failed" && Number(funding.deadline_ms) > data.now;
  return `
  <p class="account-line">Connected as <strong class="account" data-testid="account">${esc(me.account)}</strong>
    <button type="button" class="link" data-action="disconnect">Disconnect</button></p>
  <dl class="facts">
    <dt>My shares</dt><dd data-testid="shares" data-yocto="${me.shares}">${nearShort(me.shares)} (${percent(me.shares, me.supply)} of supply)</dd>
    <dt>Pending royalties</dt><dd data-testid="royalties" data-yocto="${me.pending.royalties}">${nearExact(me.pending.royalties)} NEAR</dd>
    <dt>Pending compute payments</dt><dd data-testid="compute" data-yocto="${me.pending.computePayments}">${nearExact(me.pending.computePayments)} NEAR</dd>
    <dt>Storage deposit</dt><dd>${me.storage === null ? "none yet" : nearShort(me.storage) + " NEAR (returned when you leave)"}</dd>
    ${me.payoutOwed > 0n ? `<dt>Payout kept for you</dt><dd>${nearExact(me.payoutOwed)} NEAR (its transfer failed)</dd>` : ""}
    ${me.balance === null ? "" : `<dt>Wallet balance</dt><dd>${nearShort(me.balance)} NEAR</dd>`}
  </dl>
  <form data-action="deposit" class="deposit" novalidate>
    <label for="amount">Deposit (NEAR)</label>
    <div class="row">
      <input id="amount" name="amount" inputmode="decimal" autocomplete="off" placeholder="e.g. 5"
        aria-describedby="amount-help" ${open ? "" : "disabled"}>
      <button type="submit" ${open ? "" : "disabled"}>Deposit</button>
    </div>
    <p id="amount-help" class="help">Minimum <strong data-testid="min-deposit">${nearExact(info.config.min_deposit)} NEAR</strong>.
      ${firstDeposit
        ? `Your first deposit pays <strong data-testid="storage-cost">${nearExact(storageCost)} NEAR</strong> for your share account's storage (returned when you close it); the rest becomes shares 1:1.`
        : "Every yoctoNEAR becomes one share."}
      ${open ? "" : "Funding is closed."}</p>
    <p class="help" data-testid="preview" aria-live="polite"></p>
  </form>
  <div class="actions">
    <button type="button" data-action="claim" ${pendingTotal > 0n ? "" : "disabled"}>Claim ${nearExact(pendingTotal)} NEAR</button>
    ${me.payoutOwed > 0n ? `<button type="button" data-action="retry">Send me the kept ${nearExact(me.payoutOwed)} NEAR</button>` : ""}
    ${funding.phase === "Failed" ? `<button type="button" data-action="refund" ${me.shares > 0n ? "" : "disabled"}>Refund my shares</button>` : ""}
  </div>
  ${txStatus(tx, data.config)}`;
}

const VERB = { deposit: "Deposit", claim: "Claim", refund: "Refund", retry: "Payout" };

/** The transaction status line (role=status, so screen readers hear it change). */
export function txStatus(tx, config) {
  if (!tx) return `<div role="status" class="tx" data-testid="tx"></div>`;
  const hash = tx.hash
    ? config.explorerTxUrl
      ? ` Transaction <a href="${esc(config.explorerTxUrl + tx.hash)}" target="_blank" rel="noopener"><code>${esc(tx.hash)}</code></a>.`
      : ` Transaction <code data-testid="tx-hash">${esc(tx.hash)}</code>.`
    : "";
  const words = {
    signing: `${VERB[tx.kind]}: waiting for your wallet to sign and the chain to confirm…`,
    done: `${VERB[tx.kind]} confirmed.${hash}`,
    failed: `${VERB[tx.kind]} failed: ${esc(tx.error)}.${hash}`,
  }[tx.state];
  return `<div role="status" class="tx tx-${tx.state}" data-testid="tx" data-state="${tx.state}">${words}</div>`;
}

/** What a deposit of the typed amount would give, or why it cannot be sent. */
export function depositPreview(text, me, data) {
  const yocto = parseNear(text);
  if (text.trim() === "") return "";
  if (yocto === null) return "Type an amount in NEAR, like 5 or 0.25.";
  const storage = me.storage === null ? BigInt(data.funding.storage_cost) : 0n;
  const shares = yocto > storage ? yocto - storage : 0n;
  const after = percent(me.shares + shares, me.supply + shares);
  return `You would get ${nearShort(shares)} shares (${after} of supply after the deposit).`;
}

/** The transaction for each button of the panel. */
export function panelTx(kind, run, form) {
  if (kind === "deposit") {
    const yocto = parseNear(form.amount.value);
    return yocto === null ? null : depositTx(run, yocto);
  }
  return { claim: claimTx, refund: refundTx, retry: retryPayoutTx }[kind](run);
}
