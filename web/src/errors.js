// Turns whatever a wallet or the chain throws into a sentence a funder can act on.

const PANIC = /Smart contract panicked: ([^"\\\n]+)/;
const KNOWN = [
  [/NotEnoughBalance|not enough balance|LackBalanceForState/i, "your account does not hold enough NEAR for this deposit and its gas"],
  [/User rejected|rejected by user|user cancel/i, "you declined the transaction in your wallet"],
  [/Failed to fetch|NetworkError|ECONNREFUSED/i, "the chain's RPC endpoint cannot be reached; check the network and the page's config"],
  [/No accounts found|No wallet selected/i, "no wallet is connected: connect one first"],
];

/** The contract's own panic message, or a plain sentence for other failures. */
export function reason(error) {
  const text = typeof error === "string" ? error : collect(error);
  const panic = PANIC.exec(text);
  if (panic) return panic[1].trim();
  for (const [pattern, words] of KNOWN) if (pattern.test(text)) return words;
  const first = text.split("\n")[0].trim();
  return first || "the transaction failed for an unknown reason";
}

/** The failure inside a transaction outcome a wallet returned, or null when it succeeded. */
export function outcomeFailure(outcome) {
  const failures = [outcome?.status, ...(outcome?.receipts_outcome ?? []).map((r) => r.outcome?.status)]
    .filter((s) => s && typeof s === "object" && "Failure" in s)
    .map((s) => s.Failure);
  if (failures.length === 0) return null;
  return reason(JSON.stringify(failures[0]));
}

/** The transaction hash in a wallet's outcome, if there is one. */
export function outcomeHash(outcome) {
  return outcome?.transaction_outcome?.id ?? outcome?.transaction?.hash ?? null;
}

function collect(error) {
  if (!error) return "";
  const parts = [error.message, error.type, error.cause && JSON.stringify(error.cause)];
  try {
    parts.push(JSON.stringify(error));
  } catch {
    // Circular error objects: the message is enough.
  }
  return parts.filter(Boolean).join("\n");
}
