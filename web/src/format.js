// Amounts are yoctoNEAR BigInts (10^24 per NEAR); shares are 1 per yoctoNEAR of funding.
const YOCTO_PER_NEAR = 10n ** 24n;

/** `yocto` as NEAR with every significant digit ("5", "0.000001", "1.25"). */
export function nearExact(yocto) {
  const v = BigInt(yocto);
  const sign = v < 0n ? "-" : "";
  const abs = v < 0n ? -v : v;
  const whole = abs / YOCTO_PER_NEAR;
  const frac = (abs % YOCTO_PER_NEAR).toString().padStart(24, "0").replace(/0+$/, "");
  return sign + whole.toLocaleString("en-US") + (frac ? "." + frac : "");
}

/** `yocto` as NEAR rounded to `digits` decimals for tables ("≈" marks rounding). */
export function nearShort(yocto, digits = 4) {
  const v = BigInt(yocto);
  const unit = 10n ** BigInt(24 - digits);
  const rounded = (v + unit / 2n) / unit;
  const s = (Number(rounded) / 10 ** digits).toLocaleString("en-US", { maximumFractionDigits: digits });
  return (rounded * unit === v ? "" : "≈") + s;
}

/** Parses a NEAR amount typed by a person ("5", "0.25") into yocto, or null. */
export function parseNear(text) {
  const t = String(text).trim().replace(/,/g, "");
  const m = /^(\d+)(?:\.(\d{0,24}))?$/.exec(t);
  if (!m) return null;
  return BigInt(m[1]) * YOCTO_PER_NEAR + BigInt((m[2] ?? "").padEnd(24, "0") || "0");
}

/** `part` / `whole` as a percentage with two decimals ("12.50 %"). */
export function percent(part, whole) {
  if (BigInt(whole) === 0n) return "0 %";
  const bp = (BigInt(part) * 1_000_000n) / BigInt(whole);
  return (Number(bp) / 10_000).toFixed(2) + " %";
}

/** A unix-ms time as a date and how far it is from now ("2026-12-04 10:00 UTC, in 2 days"). */
export function deadline(ms, now = Date.now()) {
  const d = new Date(Number(ms));
  const stamp = d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const diff = Number(ms) - now;
  const span = Math.abs(diff);
  const [n, unit] =
    span >= 86_400_000 ? [Math.round(span / 86_400_000), "day"]
    : span >= 3_600_000 ? [Math.round(span / 3_600_000), "hour"]
    : [Math.max(1, Math.round(span / 60_000)), "minute"];
  const rel = `${n} ${unit}${n === 1 ? "" : "s"}`;
  return diff > 0 ? `${stamp}, in ${rel}` : `${stamp}, ${rel} ago`;
}

/** A 32-byte hash shortened for a table cell; the full value goes in a title. */
export const shortHash = (h) => (h && h.length > 16 ? `${h.slice(0, 8)}…${h.slice(-6)}` : h ?? "");

/** Escapes text for HTML. */
export function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
