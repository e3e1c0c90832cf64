/** Text made safe for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/** A table; cells are already HTML (escape text with `escapeHtml`). `empty` shows when there is no row. */
export function renderTable({
  headers,
  rows,
  empty,
  name,
}: {
  headers: string[];
  rows: string[][];
  empty: string;
  /** `data-table` attribute, so a reader (or a test) can find it. */
  name: string;
}): string {
  if (rows.length === 0) return `<p class="empty" data-table="${escapeHtml(name)}">${escapeHtml(empty)}</p>`;
  const head = headers.map((header) => `<th>${escapeHtml(header)}</th>`).join("");
  const body = rows.map((row) => `<tr>${row.map((cell) => `<td>${cell}</td>`).join("")}</tr>`).join("");
  return `<table data-table="${escapeHtml(name)}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/** Headline figures: label above a large value; `key` becomes `data-figure` for readers and tests. */
export function renderFigures(
  figures: Array<{ key: string; label: string; value: string; note?: string }>,
): string {
  return `<div class="figures">${figures
    .map(
      (figure) =>
        `<div class="figure"><div class="label">${escapeHtml(figure.label)}</div><div class="value" data-figure="${escapeHtml(figure.key)}">${escapeHtml(figure.value)}</div>${figure.note ? `<div class="note">${escapeHtml(figure.note)}</div>` : ""}</div>`,
    )
    .join("")}</div>`;
}

/** The first and last characters of a long hex string (address, hash), the whole in a tooltip. */
export function shortHex(hex: string | null | undefined): string {
  if (!hex) return "—";
  const short = hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex;
  return `<span class="mono" title="${escapeHtml(hex)}">${escapeHtml(short)}</span>`;
}
