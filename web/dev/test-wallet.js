// A wallet for local chains and tests: it joins the page through the NEAR wallet
// standard's injection event, exactly as a browser-extension wallet does, and
// signs with one local key. Never for real funds: the key sits in the page.
//
// Set `window.crowdtrainTestWallet = { accountId, secretKey, rpcUrl }` before this
// script runs (the browser test and `make web-demo` do).
import { Account, JsonRpcProvider, KeyPair, KeyPairSigner, actions } from "near-api-js";

const settings = window.crowdtrainTestWallet;
const ICON =
  "data:image/svg+xml," +
  encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#0f172a"/><path d="M9 16l5 5 9-10" stroke="#34d399" stroke-width="3" fill="none"/></svg>');

function nearAction(a) {
  const p = a.params ?? {};
  switch (a.type) {
    case "FunctionCall":
      return actions.functionCall(p.methodName, p.args ?? {}, BigInt(p.gas), BigInt(p.deposit));
    case "Transfer":
      return actions.transfer(BigInt(p.deposit));
    default:
      throw new Error(`the test wallet does not sign ${a.type} actions`);
  }
}

function makeWallet() {
  const signer = new KeyPairSigner(KeyPair.fromString(settings.secretKey));
  const account = new Account(settings.accountId, new JsonRpcProvider({ url: settings.rpcUrl }), signer);
  const me = async () => [{ accountId: settings.accountId, publicKey: (await signer.getPublicKey()).toString() }];
  // Remembered across reloads, as a wallet extension remembers the sites it is connected to.
  const KEY = `crowdtrain-test-wallet:${settings.accountId}`;
  const signedIn = () => localStorage.getItem(KEY) === "1";
  const send = ({ receiverId, actions: list }) =>
    account.signAndSendTransaction({ receiverId, actions: list.map(nearAction), waitUntil: "FINAL" });
  return {
    manifest: {
      id: "crowdtrain-test-wallet",
      name: "Local test wallet",
      icon: ICON,
      description: `Signs as ${settings.accountId} with a local key (local chain only)`,
      website: "http://127.0.0.1/",
      version: "1.0.0",
      executor: "",
      type: "injected",
      platform: ["web"],
      permissions: {},
      features: {
        signMessage: false, signTransaction: false, signAndSendTransaction: true, signAndSendTransactions: true,
        signInWithoutAddKey: true, signInAndSignMessage: false, signInWithFunctionCallKey: false,
        signDelegateActions: false, mainnet: true, testnet: true,
      },
    },
    async signIn() { localStorage.setItem(KEY, "1"); return me(); },
    async signOut() { localStorage.removeItem(KEY); },
    async getAccounts() { return signedIn() ? me() : []; },
    signAndSendTransaction: send,
    async signAndSendTransactions({ transactions }) {
      const out = [];
      for (const t of transactions) out.push(await send(t));
      return out;
    },
    async signInAndSignMessage() { throw new Error("the test wallet does not sign messages"); },
    async signMessage() { throw new Error("the test wallet does not sign messages"); },
    async signDelegateActions() { throw new Error("the test wallet does not sign delegate actions"); },
  };
}

if (settings) {
  const wallet = makeWallet();
  const announce = () => window.dispatchEvent(new CustomEvent("near-wallet-injected", { detail: wallet }));
  // The connector asks with `near-selector-ready` when it starts; answer then,
  // and once now in case it started first.
  window.addEventListener("near-selector-ready", announce);
  announce();
}
