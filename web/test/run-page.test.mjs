// The run page in headless Chromium against crowdtrain-localnet: connect the
// injected test wallet, deposit, see shares, get royalties, claim them, see the
// contract's reason for a too-small deposit, refund after a missed goal.
// Needs: target/debug/crowdtrain-localnet, target/contracts/*.wasm, Debian's
// chromium(-headless-shell), `node build.mjs` (all done by `make web-test`).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { serve } from "../dev/serve.mjs";
import { NEAR, call, createAccount, createRun, deployFactory, fastForward, feesOf, startLocalnet, trainRounds } from "../dev/localnet.mjs";

const web = new URL("..", import.meta.url).pathname;
const shots = join(web, "..", "target", "web");
const browserPath = [process.env.CHROMIUM, "/usr/bin/chromium-headless-shell", "/usr/bin/chromium"].find((p) => p && existsSync(p));
const missing = !browserPath ? "no chromium: run `make web-test`, which installs Debian's chromium-headless-shell" : false;

let net, server, browser, page, factory, runA, runB, alice;
const offMachine = [];
const view = (contractId, method, args = {}) => net.provider.callFunction({ contractId, method, args });
const balance = async (id) => BigInt((await net.provider.viewAccount({ accountId: id, blockQuery: { finality: "final" } })).amount);
const yoctoOf = async (testid) => BigInt(await page.getAttribute(`[data-testid=${testid}]`, "data-yocto"));
const txDone = async () => {
  await page.waitForSelector("[data-testid=tx][data-state=done], [data-testid=tx][data-state=failed]", { timeout: 60_000 });
  return page.getAttribute("[data-testid=tx]", "data-state");
};

before(async () => {
  if (missing) return;
  net = await startLocalnet();
  factory = await deployFactory(net);
  const chainNow = Number(BigInt((await net.provider.viewBlock({ finality: "final" })).header.timestamp_nanosec) / 1_000_000n);
  runA = await createRun(net, net.root, factory, "tiny-shakespeare", { goal: 20n * NEAR, deadlineMs: chainNow + 3 * 3_600_000 });
  runB = await createRun(net, net.root, factory, "second-try", { goal: 50n * NEAR, deadlineMs: chainNow + 3_600_000 });
  const bob = await createAccount(net, "bob", 100);
  await call(bob.account, runA, "deposit", {}, { deposit: 18n * NEAR });
  alice = await createAccount(net, "alice", 100);
  server = await serve({
    config: { network: "localnet", rpcUrl: net.url, factory, walletManifest: { wallets: [], version: "1.0.0" } },
  });
  browser = await chromium.launch({ executablePath: browserPath, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (e) => console.error("page error:", e.message));
  // Nothing may leave the machine: a request elsewhere fails the test.
  page.on("request", (r) => {
    if (!/^(http:\/\/127\.0\.0\.1[:/]|data:|blob:)/.test(r.url())) offMachine.push(r.url());
  });
  await page.addInitScript((w) => (window.crowdtrainTestWallet = w), {
    accountId: alice.account.accountId, secretKey: alice.secretKey, rpcUrl: net.url,
  });
  await page.addInitScript({ path: join(web, "dist-dev", "test-wallet.js") });
});

after(async () => {
  await browser?.close();
  server?.close();
  await net?.stop();
});

test("the runs page lists the factory's runs with their funding", { skip: missing }, async () => {
  await page.goto(`http://127.0.0.1:${server.address().port}/#/`);
  await page.waitForSelector(".run-item");
  const names = await page.$$eval(".run-item h2 a", (as) => as.map((a) => a.textContent));
  assert.deepEqual(names.sort(), [runB, runA].sort());
  await page.click(`a[href="#/run/${encodeURIComponent(runA)}"]`);
  await page.waitForSelector("[data-testid=goal]");
  assert.equal(await page.textContent("[data-testid=goal]"), "20 NEAR");
  const raised = BigInt((await view(runA, "funding_status")).raised);
  const perMille = Number((raised * 1000n) / (20n * NEAR));
  assert.match(await page.textContent("#funding .progress span"), new RegExp(`of 20 NEAR \\(${(perMille / 10).toFixed(1)} %\\)$`));
});

test("a funder connects, deposits 5 NEAR and sees the shares the chain minted", { skip: missing }, async () => {
  await page.click("#me [data-action=connect]");
  await page.click('.connect-item[data-type="crowdtrain-test-wallet"]');
  await page.waitForSelector("[data-testid=account]");
  assert.equal(await page.textContent("[data-testid=account]"), alice.account.accountId);
  const storage = BigInt((await view(runA, "funding_status")).storage_cost);
  assert.match(await page.textContent("[data-testid=min-deposit]"), /^1 NEAR$/);
  assert.equal(await page.textContent("[data-testid=storage-cost]"), `0.${(storage).toString().padStart(24, "0").replace(/0+$/, "")} NEAR`);
  await page.fill("#amount", "5");
  assert.match(await page.textContent("[data-testid=preview]"), /You would get/);
  await page.click("form.deposit button[type=submit]");
  assert.equal(await txDone(), "done", await page.textContent("[data-testid=tx]"));
  await page.waitForFunction(() => document.querySelector("[data-testid=shares]")?.dataset.yocto !== "0");
  const shown = await yoctoOf("shares");
  assert.equal(shown, 5n * NEAR - storage);
  assert.equal(BigInt(await view(runA, "ft_balance_of", { account_id: alice.account.accountId })), shown);
  assert.match(await page.textContent("[data-testid=tx-hash]"), /^[1-9A-HJ-NP-Za-km-z]{43,44}$/);
});

test("revenue paid outside the page shows up as pending royalties, and claiming pays exactly that", { skip: missing }, async () => {
  const carol = await createAccount(net, "carol", 20);
  await trainRounds(net, runA, carol.account, 4);
  await call(net.root, runA, "pay_revenue", {}, { deposit: 3n * NEAR });
  await page.reload();
  await page.waitForSelector("[data-testid=royalties]");
  const shown = await yoctoOf("royalties");
  const pending = BigInt((await view(runA, "pending", { account_id: alice.account.accountId })).royalties);
  assert.ok(shown > 0n);
  assert.equal(shown, pending);
  assert.equal(await page.$$eval("#rounds tbody tr", (rows) => rows.length), 4);
  assert.match(await page.textContent("#providers tbody"), /carol.*Active.*204,800/s);
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, "run-desktop.png"), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(shots, "run-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  const before = await balance(alice.account.accountId);
  await page.click("[data-action=claim]");
  assert.equal(await txDone(), "done", await page.textContent("[data-testid=tx]"));
  const hash = await page.textContent("[data-testid=tx-hash]");
  const fees = await feesOf(net, hash, alice.account.accountId);
  const afterClaim = await balance(alice.account.accountId);
  // The wallet's account signs the claim, so it pays the gas: what it received
  // is its balance change plus every token the transaction burnt.
  assert.equal(afterClaim - before + fees, shown);
  assert.equal(await yoctoOf("royalties"), 0n);
});

test("a deposit below the minimum shows the contract's reason", { skip: missing }, async () => {
  await page.fill("#amount", "0.5");
  await page.click("form.deposit button[type=submit]");
  assert.equal(await txDone(), "failed");
  const text = await page.textContent("[data-testid=tx]");
  assert.match(text, /Deposit failed: deposit is below the minimum of 1000000000000000000000000 yoctoNEAR \(1 NEAR\)/);
  assert.doesNotMatch(text, /Error|stack|\{/);
});

test("after a missed goal the funder gets the deposit back with the refund button", { skip: missing }, async () => {
  await page.goto(`http://127.0.0.1:${server.address().port}/#/run/${encodeURIComponent(runB)}`);
  await page.waitForSelector("#amount");
  await page.fill("#amount", "3");
  await page.click("form.deposit button[type=submit]");
  assert.equal(await txDone(), "done", await page.textContent("[data-testid=tx]"));
  assert.ok((await yoctoOf("shares")) > 0n);
  await fastForward(net, 2 * 3_600_000);
  await page.reload();
  await page.waitForSelector("[data-action=refund]");
  assert.match(await page.textContent("h1 .badge"), /Goal missed/);
  assert.ok(await page.isDisabled("form.deposit button[type=submit]"));
  const before = await balance(alice.account.accountId);
  await page.click("[data-action=refund]");
  assert.equal(await txDone(), "done", await page.textContent("[data-testid=tx]"));
  const fees = await feesOf(net, await page.textContent("[data-testid=tx-hash]"), alice.account.accountId);
  // The only funder: its shares are the whole treasury, and its storage deposit comes back too.
  assert.equal((await balance(alice.account.accountId)) - before + fees, 3n * NEAR);
  assert.equal(BigInt(await view(runB, "ft_balance_of", { account_id: alice.account.accountId })), 0n);
});

test("the page fetched nothing from outside this machine", { skip: missing }, () => {
  assert.deepEqual(offMachine, []);
});
