// `make web-demo`: a local chain with a factory, a funded run that trained a few
// rounds and earned revenue, a run still open for funding, and the page served
// with the local test wallet (account `alice`). Runs until Ctrl-C.
//
//   node dev/demo.mjs [--chain-port 3030] [--page-port 8080]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "./serve.mjs";
import { NEAR, call, createAccount, createRun, deployFactory, startLocalnet, trainRounds } from "./localnet.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};

const net = await startLocalnet({ port: Number(arg("--chain-port", 3030)), home: mkdtempSync(join(tmpdir(), "crowdtrain-web-demo-")) });
const factory = await deployFactory(net);
const now = Number(BigInt((await net.provider.viewBlock({ finality: "final" })).header.timestamp_nanosec) / 1_000_000n);
const funded = await createRun(net, net.root, factory, "tiny-shakespeare", { goal: 20n * NEAR, deadlineMs: now + 7 * 86_400_000 });
const open = await createRun(net, net.root, factory, "second-try", { goal: 50n * NEAR, deadlineMs: now + 3 * 86_400_000 });
const bob = await createAccount(net, "bob", 100);
await call(bob.account, funded, "deposit", {}, { deposit: 25n * NEAR });
await call(bob.account, open, "deposit", {}, { deposit: 12n * NEAR });
const carol = await createAccount(net, "carol", 20);
await trainRounds(net, funded, carol.account, 6);
await call(net.root, funded, "pay_revenue", {}, { deposit: 2n * NEAR });
const alice = await createAccount(net, "alice", 100);
const server = await serve({
  port: Number(arg("--page-port", 8080)),
  config: { network: "localnet", rpcUrl: net.url, factory, walletManifest: { wallets: [], version: "1.0.0" } },
  testWallet: { accountId: alice.account.accountId, secretKey: alice.secretKey, rpcUrl: net.url },
});
const url = `http://127.0.0.1:${server.address().port}/#/run/${encodeURIComponent(funded)}`;
console.log(`
local chain  ${net.url} (root ${net.root.accountId})
runs         ${funded} (funded, 6 rounds, 2 NEAR revenue paid), ${open} (open)
wallet       "Local test wallet" signs as ${alice.account.accountId} (100 NEAR)

Open ${url}
Connect the wallet and deposit; revenue of 0.5 NEAR is paid every 30 s, so reload
to see your pending royalties grow and claim them. Ctrl-C stops.`);
setInterval(() => call(net.root, funded, "pay_revenue", {}, { deposit: NEAR / 2n }).catch((e) => console.error("pay_revenue:", e.message)), 30_000);
process.on("SIGINT", async () => {
  server.close();
  await net.stop();
  process.exit(0);
});
