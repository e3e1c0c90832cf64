import { randomBytes } from "node:crypto";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { SpendingPolicy, SpendStore } from "../buyer/index.js";
import {
  type DashboardSection,
  dashboardContentSecurityPolicy,
  escapeHtml,
  renderDashboardPage,
  renderFigures,
  renderTable,
  shortHex,
} from "../dashboard/index.js";
import { formatMoney } from "../pricing/index.js";

/** A horizontal bar: `used` against `cap` (no cap: the bar stays empty and says so). */
function capBar(usedAtomic: bigint, capAtomic: bigint | undefined): string {
  if (capAtomic === undefined || capAtomic === 0n) return `<span class="note">no cap</span>`;
  const share = Math.min(1, Number(usedAtomic) / Number(capAtomic));
  const color = share >= 0.9 ? "#b3261e" : share >= 0.7 ? "#c77700" : "#1f7a3a";
  return `<svg viewBox="0 0 120 10" width="120" height="10" role="img" aria-label="${Math.round(share * 100)}% of the cap"><rect width="120" height="10" rx="3" fill="#e8eaef"/><rect width="${(share * 120).toFixed(1)}" height="10" rx="3" fill="${color}"/></svg> ${Math.round(share * 100)}%`;
}

/** The buyer's spend as dashboard sections: today against every cap, per provider, recent receipts, disputes. */
export async function readSpendDashboard(
  store: SpendStore,
  policy: SpendingPolicy | undefined,
): Promise<{ updatedAt: string; sections: DashboardSection[]; figures: Record<string, unknown> }> {
  const [spend, recent, disputes] = await Promise.all([
    store.daySpend(),
    store.recent({ limit: 20 }),
    store.disputes({ status: "open" }),
  ]);
  const origins = new Set([...spend.providers.map((p) => p.origin), ...Object.keys(policy?.providers ?? {})]);
  const providerRows = [...origins].sort().map((origin) => {
    const day = spend.providers.find((p) => p.origin === origin);
    const caps = policy?.providers[origin];
    const counted = day?.countedAtomic ?? 0n;
    const dailyCap = caps?.daily;
    const perCall = caps?.perCall ?? policy?.perCall;
    return [
      escapeHtml(origin),
      formatMoney(counted),
      dailyCap === undefined ? "—" : formatMoney(dailyCap),
      capBar(counted, dailyCap),
      perCall === undefined ? "—" : formatMoney(perCall),
      formatMoney(day?.chargedAtomic ?? 0n),
      formatMoney(day?.reservedAtomic ?? 0n),
      String(day?.payments ?? 0),
    ];
  });
  const saved = recent.reduce(
    (sum, r) =>
      sum + (r.status === "settled" && r.chargedAtomic !== undefined ? r.maxAtomic - r.chargedAtomic : 0n),
    0n,
  );
  const sections: DashboardSection[] = [
    {
      id: "today",
      title: `Today (${spend.day}, UTC)`,
      html: `${renderFigures([
        { key: "spent", label: "Counted against caps", value: formatMoney(spend.countedAtomic) },
        {
          key: "daily-cap",
          label: "Daily cap",
          value: policy?.daily === undefined ? "none" : formatMoney(policy.daily),
        },
        {
          key: "per-call",
          label: "Per-call cap",
          value: policy?.perCall === undefined ? "none" : formatMoney(policy.perCall),
        },
        { key: "disputes", label: "Open disputes", value: String(disputes.length) },
        { key: "saved", label: "Saved, authorized not charged (recent)", value: formatMoney(saved) },
      ])}<p>${capBar(spend.countedAtomic, policy?.daily)}</p>`,
    },
    {
      id: "providers",
      title: "Per provider",
      html: renderTable({
        name: "providers",
        headers: [
          "provider",
          "counted",
          "daily cap",
          "of cap",
          "per call",
          "charged",
          "reserved",
          "payments",
        ],
        rows: providerRows,
        empty: "no provider paid today and none in the policy",
      }),
    },
    {
      id: "receipts",
      title: "Recent receipts",
      html: renderTable({
        name: "receipts",
        headers: ["time", "provider", "model", "status", "charged", "of maximum", "transaction"],
        rows: recent.map((r) => [
          escapeHtml(r.createdAt.toISOString().replace("T", " ").slice(0, 19)),
          escapeHtml(r.origin),
          escapeHtml(r.model ?? "—"),
          escapeHtml(r.status),
          r.chargedAtomic === undefined ? "—" : formatMoney(r.chargedAtomic),
          formatMoney(r.maxAtomic),
          shortHex(r.transaction),
        ]),
        empty: "nothing paid yet",
      }),
    },
    {
      id: "disputes",
      title: "Open disputes",
      html: renderTable({
        name: "disputes",
        headers: ["#", "provider", "reason", "charged", "justified", "maximum", "transaction"],
        rows: disputes.map((d) => [
          String(d.id),
          escapeHtml(d.origin),
          `<span class="bad">${escapeHtml(d.reason)}</span>`,
          formatMoney(d.chargedAtomic),
          d.justifiedAtomic === undefined ? "?" : formatMoney(d.justifiedAtomic),
          formatMoney(d.maxAtomic),
          shortHex(d.transaction),
        ]),
        empty: "no open dispute",
      }),
    },
  ];
  return {
    updatedAt: new Date().toISOString(),
    sections,
    figures: {
      day: spend.day,
      countedAtomic: spend.countedAtomic.toString(),
      dailyCapAtomic: policy?.daily?.toString() ?? null,
      openDisputes: disputes.length,
      receipts: recent.length,
    },
  };
}

/**
 * `tollgate spend --serve`: the buyer's live spend page on loopback, behind a token made for the run.
 * Resolves once listening, with the page's URL (token included).
 */
export async function serveSpendDashboard({
  store,
  policy,
  host,
  port,
  token = randomBytes(18).toString("base64url"),
}: {
  store: SpendStore;
  policy: SpendingPolicy | undefined;
  host: string;
  port: number;
  token?: string;
}): Promise<{ url: string; close(): Promise<void> }> {
  const app = new Hono();
  const authorized = (url: string) => new URL(url).searchParams.get("token") === token;
  const refused = () =>
    new Response("this page needs its token: open the URL `tollgate spend --serve` printed", { status: 401 });
  app.get("/", async (c) => {
    if (!authorized(c.req.url)) return refused();
    const nonce = randomBytes(16).toString("base64");
    const { sections } = await readSpendDashboard(store, policy);
    return c.html(
      renderDashboardPage({
        title: "Tollgate — spend",
        sections,
        dataUrl: "/data.json",
        refreshMs: 2_000,
        nonce,
      }),
      200,
      { "content-security-policy": dashboardContentSecurityPolicy(nonce), "cache-control": "no-store" },
    );
  });
  app.get("/data.json", async (c) => {
    if (!authorized(c.req.url)) return refused();
    const data = await readSpendDashboard(store, policy);
    return c.json({
      updatedAt: data.updatedAt,
      figures: data.figures,
      sections: Object.fromEntries(data.sections.map((s) => [s.id, s.html])),
    });
  });
  app.notFound(() => new Response("not found", { status: 404 }));
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info) => {
      resolve({
        url: `http://${host}:${info.port}/?token=${token}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
    server.once("error", reject);
  });
}
