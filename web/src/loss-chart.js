// The loss chart: one plain SVG, one point per round (mean over its receipts).
import { esc } from "./format.js";

const W = 640;
const H = 220;
const PAD = { left: 64, right: 16, top: 16, bottom: 36 };

/**
 * @param {{round: number, series: Record<string, number|null>}[]} points
 * @param {Record<string, string>} colors series name -> CSS colour
 */
export function lossChart(points, colors) {
  const names = Object.keys(colors).filter((n) => points.some((p) => p.series[n] != null));
  const values = points.flatMap((p) => names.map((n) => p.series[n])).filter((v) => v != null && Number.isFinite(v));
  if (points.length === 0 || values.length === 0) return `<p class="muted">No losses reported yet.</p>`;
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  const first = points[0].round;
  const last = points[points.length - 1].round;
  const x = (r) => PAD.left + (last === first ? (W - PAD.left - PAD.right) / 2 : ((r - first) / (last - first)) * (W - PAD.left - PAD.right));
  const y = (v) => PAD.top + (1 - (v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);
  const ticks = [lo, (lo + hi) / 2, hi];
  const grid = ticks
    .map((t) => `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(t)}" y2="${y(t)}" class="gridline"/>` +
      `<text x="${PAD.left - 6}" y="${y(t) + 4}" text-anchor="end">${t.toFixed(3)}</text>`)
    .join("");
  const xLabels = points
    .filter((_, i) => points.length <= 12 || i % Math.ceil(points.length / 12) === 0)
    .map((p) => `<text x="${x(p.round)}" y="${H - 10}" text-anchor="middle">${p.round}</text>`)
    .join("");
  const lines = names
    .map((n) => {
      const pts = points.filter((p) => p.series[n] != null);
      const path = pts.map((p, i) => `${i ? "L" : "M"}${x(p.round).toFixed(1)},${y(p.series[n]).toFixed(1)}`).join("");
      const dots = pts.map((p) => `<circle cx="${x(p.round)}" cy="${y(p.series[n])}" r="3"><title>round ${p.round}: ${p.series[n].toFixed(4)}</title></circle>`).join("");
      return `<g class="series" stroke="${colors[n]}" fill="${colors[n]}"><path d="${path}" fill="none"/>${dots}</g>`;
    })
    .join("");
  const legend = names.map((n) => `<span><i style="background:${colors[n]}"></i>${esc(n)}</span>`).join("");
  const summary = names.map((n) => `${n} ${values.length ? "from round " + first + " to " + last : ""}`).join("; ");
  return `<figure class="chart">
    <svg viewBox="0 0 ${W} ${H}" role="img" aria-label="Loss per round: ${esc(summary)}">
      ${grid}${xLabels}${lines}
      <text x="${W / 2}" y="${H - 0}" text-anchor="middle" class="axis">round</text>
    </svg>
    <figcaption class="legend">${legend}</figcaption>
  </figure>`;
}
