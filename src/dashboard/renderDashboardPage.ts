import { escapeHtml } from "./html.js";

/** One block of a dashboard: its id (the key in the JSON the page polls), heading and HTML. */
export type DashboardSection = { id: string; title: string; html: string };

const styles = `
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2433;background:#f5f6f8}
body{margin:0;padding:24px 32px}
header{display:flex;align-items:baseline;gap:16px;margin-bottom:16px}
h1{font-size:20px;margin:0}
h2{font-size:15px;margin:0 0 10px;color:#3a4358}
#status{font-size:12px;color:#6b7385}
section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:14px 18px;margin-bottom:16px}
.figures{display:flex;flex-wrap:wrap;gap:28px}
.figure .label{font-size:12px;color:#6b7385}
.figure .value{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.figure .note{font-size:11px;color:#8a91a1}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th{text-align:left;font-weight:600;color:#6b7385;border-bottom:1px solid #e1e4ea;padding:4px 8px}
td{border-bottom:1px solid #f0f1f4;padding:4px 8px}
.mono{font-family:ui-monospace,Menlo,monospace;font-size:12px}
.empty{color:#8a91a1;font-size:13px;margin:0}
.chart rect{fill:#3b6fd8}.chart .axis{stroke:#c9ced8}.chart .tick{font-size:8px;fill:#6b7385}
.bad{color:#b3261e}.good{color:#1f7a3a}
`;

/**
 * A self-contained dashboard page: the sections rendered on the server, then refreshed by a few lines of
 * inline script that poll `dataUrl` (JSON `{ sections: { id: html }, updatedAt }`) with the page's own
 * query string (its token). Nothing is fetched from elsewhere; the script runs under a CSP nonce.
 */
export function renderDashboardPage({
  title,
  sections,
  dataUrl,
  refreshMs,
  nonce,
}: {
  title: string;
  sections: DashboardSection[];
  dataUrl: string;
  refreshMs: number;
  nonce: string;
}): string {
  const blocks = sections
    .map(
      (section) =>
        `<section><h2>${escapeHtml(section.title)}</h2><div id="${escapeHtml(section.id)}">${section.html}</div></section>`,
    )
    .join("\n");
  const script = `
const dataUrl = ${JSON.stringify(dataUrl)} + location.search;
const status = document.getElementById("status");
async function refresh() {
  try {
    const response = await fetch(dataUrl, { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const data = await response.json();
    for (const [id, html] of Object.entries(data.sections)) {
      const element = document.getElementById(id);
      if (element && element.innerHTML !== html) element.innerHTML = html;
    }
    status.textContent = "updated " + new Date(data.updatedAt).toLocaleTimeString();
    document.body.dataset.updatedAt = data.updatedAt;
  } catch (error) {
    status.textContent = "offline (" + error.message + "), retrying";
  }
  setTimeout(refresh, ${Math.max(250, Math.trunc(refreshMs))});
}
setTimeout(refresh, ${Math.max(250, Math.trunc(refreshMs))});
`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="icon" href="data:,"><style>${styles}</style></head>
<body><header><h1>${escapeHtml(title)}</h1><span id="status">live</span></header>
${blocks}
<script nonce="${escapeHtml(nonce)}">${script}</script></body></html>`;
}

/** The Content-Security-Policy for a page from `renderDashboardPage`: its own script and data, nothing else. */
export function dashboardContentSecurityPolicy(nonce: string): string {
  return `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
}
