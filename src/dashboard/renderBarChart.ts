import { escapeHtml } from "./html.js";

/** One bar: its label (x axis), value (bar height) and the value written out (tooltip). */
export type BarPoint = { label: string; value: number; display: string };

/**
 * A bar chart as inline SVG, drawn on the server: no script, no chart library, nothing fetched.
 * Bars scale to the largest value; each bar's `<title>` shows its label and value.
 */
export function renderBarChart({
  points,
  width = 720,
  height = 110,
  empty,
  name,
}: {
  points: BarPoint[];
  width?: number;
  height?: number;
  empty: string;
  name: string;
}): string {
  if (points.length === 0)
    return `<p class="empty" data-chart="${escapeHtml(name)}">${escapeHtml(empty)}</p>`;
  const axis = 18;
  const plotHeight = height - axis;
  const max = Math.max(...points.map((point) => point.value), 0);
  const slot = width / points.length;
  const barWidth = Math.max(2, slot * 0.7);
  const bars = points
    .map((point, i) => {
      const barHeight = max > 0 ? Math.max(1, (point.value / max) * (plotHeight - 4)) : 1;
      const x = i * slot + (slot - barWidth) / 2;
      const y = plotHeight - barHeight;
      return `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${barHeight.toFixed(1)}" rx="2"><title>${escapeHtml(`${point.label}: ${point.display}`)}</title></rect>`;
    })
    .join("");
  const first = points[0]?.label ?? "";
  const last = points[points.length - 1]?.label ?? "";
  return `<svg class="chart" data-chart="${escapeHtml(name)}" viewBox="0 0 ${width} ${height}" width="100%" role="img" aria-label="${escapeHtml(name)}">${bars}<line x1="0" y1="${plotHeight}" x2="${width}" y2="${plotHeight}" class="axis"/><text x="0" y="${height - 4}" class="tick">${escapeHtml(first)}</text><text x="${width}" y="${height - 4}" class="tick" text-anchor="end">${escapeHtml(last)}</text></svg>`;
}
