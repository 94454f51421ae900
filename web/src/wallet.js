// The browser wallet, through the NEAR wallet standard (@hot-labs/near-connect):
// the user picks any wallet the connector knows or one injected into the page
// (`near-wallet-injected`), and every transaction goes through it.
import { NearConnector } from "@hot-labs/near-connect";
import { outcomeFailure, outcomeHash, reason } from "./errors.js";

/** The connected account (or none) and a way to sign transactions. */
export class Wallet {
  /**
   * @param {object} config the page's config (network, walletManifest)
   * @param {(accountId: string|null) => void} onAccount called whenever the account changes
   */
  constructor(config, onAccount) {
    this.accountId = null;
    this.onAccount = onAccount;
    this.connector = new NearConnector({
      network: config.network,
      // An inline manifest means nothing is fetched (local chains, tests); without
      // one the connector loads its public list of wallets.
      ...(config.walletManifest ? { manifest: config.walletManifest } : {}),
      footerBranding: null,
    });
    this.connector.on("wallet:signIn", ({ accounts }) => this.setAccount(accounts?.[0]?.accountId ?? null));
    this.connector.on("wallet:signOut", () => this.setAccount(null));
    // A wallet chosen on an earlier visit reconnects without a prompt.
    this.connector
      .getConnectedWallet()
      .then(({ accounts }) => this.setAccount(accounts[0]?.accountId ?? null))
      .catch(() => {});
  }

  setAccount(accountId) {
    this.accountId = accountId;
    this.onAccount(accountId);
  }

  /** Opens the wallet picker; resolves once an account is connected. */
  async connect() {
    await this.connector.connect();
  }

  /** Forgets the connected wallet. */
  async disconnect() {
    await this.connector.disconnect().catch(() => {});
    this.setAccount(null);
  }

  /**
   * Signs and sends one transaction; `onState` hears "signing", then "done" or
   * "failed" with the hash and, on failure, the reason in words. Never throws.
   * @returns {Promise<{ok: boolean, hash: string|null, error?: string}>}
   */
  async send(tx, onState) {
    onState({ state: "signing" });
    let result;
    try {
      const wallet = await this.connector.wallet();
      const outcome = await wallet.signAndSendTransaction({ signerId: this.accountId, ...tx });
      const failure = outcomeFailure(outcome);
      result = failure ? { ok: false, hash: outcomeHash(outcome), error: failure } : { ok: true, hash: outcomeHash(outcome) };
    } catch (e) {
      result = { ok: false, hash: e?.transactionHash ?? e?.context?.transactionHash ?? null, error: reason(e) };
    }
    onState({ state: result.ok ? "done" : "failed", ...result });
    return result;
  }
}
