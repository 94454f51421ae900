// The local chain and the parties the browser test needs besides the page:
// crowdtrain-localnet on a free loopback port, the factory, runs, a second
// funder, a provider posting signed receipts, a payer of revenue.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Account, JsonRpcProvider, KeyPair, KeyPairSigner, actions } from "near-api-js";

export const NEAR = 10n ** 24n;
const TGAS = 10n ** 12n;
const repo = new URL("../../", import.meta.url).pathname;

/**
 * Starts `crowdtrain-localnet` (port 0 = a free one; a fresh temporary home unless
 * one is given) and reads its URL and root key from its output.
 */
export async function startLocalnet({ port = 0, home } = {}) {
  const bin = process.env.CROWDTRAIN_LOCALNET_BIN ?? join(repo, "target/debug/crowdtrain-localnet");
  const temporary = !home;
  home ??= mkdtempSync(join(tmpdir(), "crowdtrain-web-"));
  const child = spawn(bin, ["--port", String(port), "--home", home], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: "warn" } });
  let out = "";
  const ready = new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`crowdtrain-localnet exited with ${code} before serving:\n${out}`)));
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const url = /serving NEAR JSON-RPC at (\S+)/.exec(out)?.[1];
      const keyFile = /root key file: (\S+)/.exec(out)?.[1];
      if (url && keyFile) resolve({ url, keyFile });
    });
  });
  const { url, keyFile } = await ready;
  const key = JSON.parse(readFileSync(keyFile, "utf8"));
  const provider = new JsonRpcProvider({ url });
  const root = new Account(key.account_id, provider, new KeyPairSigner(KeyPair.fromString(key.private_key)));
  return {
    url,
    provider,
    root,
    async stop() {
      child.kill("SIGINT");
      await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
      if (temporary) rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Creates `<name>.<root>` with `near` NEAR and a fresh key; returns its Account and secret key. */
export async function createAccount(net, name, near) {
  const keyPair = KeyPair.fromRandom("ed25519");
  const accountId = `${name}.${net.root.accountId}`;
  await net.root.createAccount({ newAccountId: accountId, publicKey: keyPair.getPublicKey().toString(), nearToTransfer: BigInt(near) * NEAR });
  return { account: new Account(accountId, net.provider, new KeyPairSigner(keyPair)), secretKey: keyPair.toString() };
}

/** Sends one function call and returns the outcome (throws when it fails). */
export function call(account, contractId, methodName, args, { deposit = 0n, gas = 100n * TGAS } = {}) {
  return account.signAndSendTransaction({ receiverId: contractId, actions: [actions.functionCall(methodName, args, gas, deposit)], waitUntil: "FINAL" });
}

/** Deploys target/contracts/crowdtrain_factory.wasm to `factory.<root>`. */
export async function deployFactory(net) {
  const wasm = readFileSync(join(repo, "target/contracts/crowdtrain_factory.wasm"));
  const { account } = await createAccount(net, "factory", 60);
  await account.deployContract(new Uint8Array(wasm));
  await call(account, account.accountId, "new", {});
  return account.accountId;
}

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const sha256 = (...parts) => createHash("sha256").update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest();

/** Creates run `<name>.<factory>` through the factory, signed by `creator`. */
export async function createRun(net, creator, factory, name, { goal, deadlineMs, minDeposit = NEAR }) {
  const config = {
    owner: creator.accountId,
    auditors: [],
    funding_goal: goal.toString(),
    funding_deadline_ms: String(deadlineMs),
    min_deposit: minDeposit.toString(),
    provider_bond: NEAR.toString(),
    price_per_token: (10n ** 18n).toString(),
    shares_per_token: (10n ** 18n).toString(),
    quorum: 1,
    challenge_window_ms: "1000",
    inner_steps: 25,
    max_tokens_per_round: "100000",
    model_spec_hash: hex(sha256("model")),
    dataset_hash: hex(sha256("dataset")),
    initial_checkpoint_hash: hex(sha256("checkpoint 0")),
    initial_checkpoint_uri: `sha256:${hex(sha256("checkpoint 0"))}`,
  };
  const cost = await net.provider.callFunction({ contractId: factory, method: "create_run_cost", args: {} });
  await call(creator, factory, "create_run", { name, config }, { deposit: BigInt(cost.deposit), gas: 300n * TGAS });
  return `${name}.${factory}`;
}

function u32(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
function u64(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
function f32(x) {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return b;
}
const str = (s) => Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s)]);

/** sha256(tag ‖ borsh(receipt)), as contracts/protocol/src/receipt.rs signs it. */
function receiptSigningHash(r) {
  const h = (x) => Buffer.from(x, "hex");
  const borsh = Buffer.concat([
    str(r.run), u64(r.round), str(r.provider), h(r.base_checkpoint), h(r.result_checkpoint), h(r.blob), h(r.blob_set),
    u32(r.inner_steps), u64(r.tokens), f32(r.loss_start), f32(r.loss_end), u64(r.unix_ms),
  ]);
  return sha256(Buffer.from("crowdtrain:receipt:v1\0"), borsh);
}

/** A provider that registers with `run` and trains `rounds` rounds on its own (quorum 1). */
export async function trainRounds(net, run, provider, rounds) {
  const signing = KeyPair.fromRandom("ed25519");
  await call(provider, run, "register_provider", { signing_key: signing.getPublicKey().toString(), node_id: "node-1" }, { deposit: 2n * NEAR });
  let base = hex(sha256("checkpoint 0"));
  for (let round = 1; round <= rounds; round++) {
    const blob = sha256(`blob ${round}`);
    const result = hex(sha256(`checkpoint ${round}`));
    const loss = 4.2 * Math.exp(-0.35 * round);
    const receipt = {
      run, round, provider: provider.accountId, base_checkpoint: base, result_checkpoint: result, blob: hex(blob),
      blob_set: hex(sha256(Buffer.from("crowdtrain:blob-set:v1\0"), blob)), inner_steps: 25, tokens: 51200,
      loss_start: Math.fround(loss + 0.4), loss_end: Math.fround(loss), unix_ms: Date.now(),
    };
    const { signature } = signing.sign(receiptSigningHash(receipt));
    await call(provider, run, "submit_receipt", { receipt, signature: Buffer.from(signature).toString("base64") });
    await call(provider, run, "finalize_round", { round, blob_hashes: [hex(blob)], checkpoint_uri: null });
    base = result;
  }
}

/** Moves the chain's clock forward by `ms` (sandbox_fast_forward; one block is one second). */
export function fastForward(net, ms) {
  return net.provider.sendJsonRpc("sandbox_fast_forward", { delta_height: Math.ceil(ms / 1000) });
}

/** The signer's cost of a transaction: the tokens burnt by it and all its receipts. */
export async function feesOf(net, hash, sender) {
  const tx = await net.provider.viewTransactionStatus({ txHash: hash, accountId: sender, waitUntil: "FINAL" });
  return [tx.transaction_outcome, ...tx.receipts_outcome].reduce((sum, o) => sum + BigInt(o.outcome.tokens_burnt), 0n);
}
