// Every contract call the page makes, in one place: views through near-api-js's
// JSON-RPC provider, transactions as wallet-standard actions for the wallet to
// sign. When the contracts change (paged views, new fields), this is the file to edit.
import { JsonRpcProvider } from "near-api-js";

/** Gas attached to each call: a few times what GAS.md measured, the rest is refunded. */
const GAS = {
  deposit: 30_000_000_000_000n,
  claim: 60_000_000_000_000n,
  refund: 30_000_000_000_000n,
};
/** Rounds the run page reads at most (the newest ones). */
export const MAX_ROUNDS_SHOWN = 40;
/** Providers read per page of the `providers` view. */
const PROVIDERS_PAGE = 100;
/** Receipts read per page of the `receipts` view. */
const RECEIPTS_PAGE = 100;

/** Reads the factory and its runs over JSON-RPC. */
export class RunChain {
  /** @param {string} rpcUrl the chain's JSON-RPC endpoint */
  constructor(rpcUrl) {
    // Few, quick retries: a page that cannot reach its RPC should say so within seconds.
    this.provider = new JsonRpcProvider({ url: rpcUrl }, { retries: 2, wait: 300, backoff: 2 });
  }

  /** A view call's parsed JSON result. */
  view(contractId, method, args = {}) {
    return this.provider.callFunction({ contractId, method, args, blockQuery: { finality: "optimistic" } });
  }

  /** The runs a factory created (oldest first). */
  async runs(factory) {
    const all = [];
    for (let from = 0; ; from += 100) {
      const page = (await this.view(factory, "runs", { from_index: from, limit: 100 })) ?? [];
      all.push(...page);
      if (page.length < 100) return all;
    }
  }

  /** Phase, raised, goal, deadline, refunded, storage cost of a first deposit. */
  fundingStatus(run) {
    return this.view(run, "funding_status");
  }

  /** Configuration, phase, last finalized round, checkpoint, supply. */
  runInfo(run) {
    return this.view(run, "run_info");
  }

  /** Where the run's money is. */
  treasury(run) {
    return this.view(run, "treasury");
  }

  /** Every registered provider, in registration order. */
  async providers(run) {
    const all = [];
    for (let from = 0; ; from += PROVIDERS_PAGE) {
      const page = (await this.view(run, "providers", { from_index: from, limit: PROVIDERS_PAGE })) ?? [];
      all.push(...page);
      if (page.length < PROVIDERS_PAGE) return all;
    }
  }

  /** The round view, or null. (The wasm exports `round_view` as `round`.) */
  round(run, round) {
    return this.view(run, "round", { round });
  }

  /** Every receipt posted for `round`, paging the `receipts` view. */
  async receipts(run, round) {
    const all = [];
    for (let from = 0; ; from += RECEIPTS_PAGE) {
      const page = (await this.view(run, "receipts", { round, from_index: from, limit: RECEIPTS_PAGE })) ?? [];
      all.push(...page);
      if (page.length < RECEIPTS_PAGE) return all;
    }
  }

  /**
   * The newest rounds (up to the open one) that have anything posted, oldest first,
   * each as {round, status, checkpoint, receipts, credits}.
   */
  async rounds(run, info) {
    const newest = Number(info.open_round ?? Number(info.last_finalized_round) + 1);
    const oldest = Math.max(1, newest - MAX_ROUNDS_SHOWN + 1);
    const numbers = [];
    for (let r = oldest; r <= newest; r++) numbers.push(r);
    const rows = await Promise.all(numbers.map((r) => this.roundRow(run, r)));
    return rows.filter(Boolean);
  }

  /** One round in the page's terms, from either shape of the `round` view. */
  async roundRow(run, round) {
    const state = await this.round(run, round);
    if (!state) return null;
    const fin = state.finalization ?? null;
    // Older contracts embed the receipts and a credit list; newer ones page them
    // and keep each credit's fate on its receipt.
    const stored = Array.isArray(state.receipts) ? state.receipts : await this.receipts(run, round);
    const counted = (status) => status === "Pending" || (typeof status === "object" && status !== null && "Settled" in status);
    const credits = Array.isArray(fin?.credits)
      ? fin.credits.filter((c) => counted(c.status)).map((c) => ({ provider: c.provider, tokens: Number(c.tokens) }))
      : fin && !fin.disputed
        ? stored.filter((s) => counted(s.status ?? "Pending")).map((s) => ({ provider: s.receipt.provider, tokens: Number(s.receipt.tokens) }))
        : [];
    const status = state.status ? String(state.status).toLowerCase() : fin ? (fin.settled ? "settled" : "finalized") : "open";
    return { round, status, checkpoint: fin?.result_checkpoint ?? null, receipts: stored.map((s) => s.receipt), credits };
  }

  /** Shares held by `account` (yocto-shares as a BigInt). */
  async shares(run, account) {
    return BigInt(await this.view(run, "ft_balance_of", { account_id: account }));
  }

  /** Shares outstanding. */
  async totalSupply(run) {
    return BigInt(await this.view(run, "ft_total_supply"));
  }

  /** Royalties and compute payments `account` can claim now. */
  async pending(run, account) {
    const p = await this.view(run, "pending", { account_id: account });
    return { royalties: BigInt(p.royalties), computePayments: BigInt(p.compute_payments) };
  }

  /** The account's share-token storage deposit, or null when it has no share account yet. */
  async storageDeposit(run, account) {
    const b = await this.view(run, "storage_balance_of", { account_id: account });
    return b ? BigInt(b.total) : null;
  }

  /** The chain's clock (unix ms of the latest block): deadlines are judged by it, not by this computer's. */
  async now() {
    const block = await this.provider.viewBlock({ finality: "optimistic" });
    return Math.floor(Number(BigInt(block.header.timestamp_nanosec) / 1_000_000n));
  }

  /** A refund or return whose transfer failed and is kept for `account` (0 on contracts without `payout_owed`). */
  async payoutOwed(run, account) {
    return BigInt((await this.view(run, "payout_owed", { account_id: account }).catch(() => "0")) ?? "0");
  }

  /** The account's NEAR balance (yocto). */
  async balance(account) {
    const view = await this.provider.viewAccount({ accountId: account, blockQuery: { finality: "optimistic" } });
    return BigInt(view.amount);
  }
}

function call(run, methodName, gas, deposit) {
  return {
    receiverId: run,
    actions: [{ type: "FunctionCall", params: { methodName, args: {}, gas: gas.toString(), deposit: deposit.toString() } }],
  };
}

/** The transaction that funds `run` with `yocto` (shares 1:1, less a first deposit's storage). */
export const depositTx = (run, yocto) => call(run, "deposit", GAS.deposit, yocto);
/** The transaction that sends the caller its royalties and compute payments. */
export const claimTx = (run) => call(run, "claim", GAS.claim, 0n);
/** The transaction that returns the caller's share of the treasury after a missed goal. */
export const refundTx = (run) => call(run, "refund", GAS.refund, 0n);
/** The transaction that resends a payout whose transfer failed. */
export const retryPayoutTx = (run) => call(run, "retry_payout", GAS.refund, 0n);
