// Amounts and error texts as a funder reads them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { nearExact, nearShort, parseNear, percent } from "../src/format.js";
import { outcomeFailure, reason } from "../src/errors.js";

const NEAR = 10n ** 24n;

test("amounts typed in NEAR become exact yoctoNEAR and print back the same", () => {
  assert.equal(parseNear("5"), 5n * NEAR);
  assert.equal(parseNear(" 0.25 "), NEAR / 4n);
  assert.equal(parseNear("0.000000000000000000000001"), 1n);
  for (const bad of ["", "-1", "1e3", "abc", "1.0000000000000000000000001"]) assert.equal(parseNear(bad), null, bad);
  assert.equal(nearExact(5n * NEAR), "5");
  assert.equal(nearExact(1234n * NEAR + 1n), "1,234.000000000000000000000001");
  assert.equal(nearShort(NEAR / 3n), "≈0.3333");
  assert.equal(nearShort(20n * NEAR), "20");
  assert.equal(percent(1n, 3n), "33.33 %");
  assert.equal(percent(0n, 0n), "0 %");
});

test("a contract panic is shown as the contract's sentence, whatever wraps it", () => {
  const panic = "Smart contract panicked: deposit is below the minimum of 1000 yoctoNEAR (1 NEAR)";
  assert.equal(reason(new Error(panic)), "deposit is below the minimum of 1000 yoctoNEAR (1 NEAR)");
  const outcome = {
    status: { Failure: { ActionError: { index: 0, kind: { FunctionCallError: { ExecutionError: panic } } } } },
    receipts_outcome: [],
  };
  assert.equal(outcomeFailure(outcome), "deposit is below the minimum of 1000 yoctoNEAR (1 NEAR)");
  assert.equal(outcomeFailure({ status: { SuccessValue: "" }, receipts_outcome: [] }), null);
  assert.equal(reason(new Error("User rejected")), "you declined the transaction in your wallet");
  assert.equal(reason(new TypeError("Failed to fetch")), "the chain's RPC endpoint cannot be reached; check the network and the page's config");
});
