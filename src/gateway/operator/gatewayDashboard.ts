import {
  type DashboardSection,
  escapeHtml,
  renderBarChart,
  renderFigures,
  renderTable,
  shortHex,
} from "../../dashboard/index.js";
import { channelShortfallAtomic, type Ledger, type PaymentRecord } from "../../ledger/index.js";
import { formatMoney } from "../../pricing/index.js";

/** An amount in a table's column: every decimal, so $0.050000 lines up with $0.001234 rather than reading $0.05. */
const cellMoney = (atomic: bigint) => formatMoney(atomic, { trim: false });

/** A payment channel as the dashboard lists it, when the gateway has channels. */
export type DashboardChannel = {
  channelId: string;
  payer: string;
  depositAtomic: bigint;
  chargedAtomic: bigint;
  claimedAtomic: bigint;
  /** What the payer owes beyond the channel's escrow (it withdrew before the charges were claimed); 0 when none. */
  shortfallAtomic: bigint;
  status: string;
};

/** The ledger's channels as the dashboard lists them: a short channel's status is `short`. */
export async function dashboardChannelsOf(ledger: Pick<Ledger, "channels">): Promise<DashboardChannel[]> {
  return (await ledger.channels.list()).map((channel) => {
    const shortfallAtomic = channelShortfallAtomic(channel);
    return {
      channelId: channel.channelId,
      payer: channel.payer,
      depositAtomic: channel.depositedAtomic,
      chargedAtomic: channel.chargedAtomic,
      claimedAtomic: channel.totalClaimedAtomic,
      shortfallAtomic,
      status:
        shortfallAtomic > 0n
          ? "short"
          : channel.withdrawRequestedAt > 0
            ? "withdrawing"
            : channel.pending !== undefined
              ? "serving"
              : "open",
    };
  });
}

export type GatewayDashboardParameters = {
  ledger: Pick<Ledger, "payments" | "insights">;
  /** Payment channels, when the gateway has them; the section is left out otherwise. */
  listChannels?: () => Promise<DashboardChannel[]>;
  /** Revenue chart: this many buckets of `bucketSeconds`, ending now. Default 60 × 60 s. */
  buckets?: number;
  bucketSeconds?: number;
  /** Recent payments listed; default 20. */
  recentLimit?: number;
};

/** What the dashboard shows, as figures (JSON) and as rendered sections. */
export type GatewayDashboard = {
  updatedAt: string;
  figures: {
    chargedAtomic: string;
    authorizedAtomic: string;
    savedAtomic: string;
    owedAtomic: string;
    openDebts: number;
    /** Channels whose payer owes beyond the escrow, and what they owe (0 without channels). */
    channelShortfalls: number;
    shortfallAtomic: string;
    settlementBacklog: number;
    payments: number;
    models: Array<Record<string, string | number>>;
    recent: Array<Record<string, string | number | null>>;
  };
  sections: DashboardSection[];
};

/** Reads the ledger and renders the operator's dashboard: money, models, recent payments, debts, backlog. */
export async function readGatewayDashboard({
  ledger,
  listChannels,
  buckets = 60,
  bucketSeconds = 60,
  recentLimit = 20,
}: GatewayDashboardParameters): Promise<GatewayDashboard> {
  const now = Date.now();
  const since = new Date(
    Math.floor((now - (buckets - 1) * bucketSeconds * 1000) / (bucketSeconds * 1000)) * bucketSeconds * 1000,
  );
  const [models, backlog, revenue, recent, debts, channels] = await Promise.all([
    ledger.insights.models(),
    ledger.insights.backlog(),
    ledger.insights.revenueOverTime({ since, bucketSeconds }),
    ledger.payments.recent({ limit: recentLimit }),
    ledger.payments.openDebts(),
    listChannels?.(),
  ]);
  const sum = (pick: (model: (typeof models)[number]) => bigint) =>
    models.reduce((total, m) => total + pick(m), 0n);
  const charged = sum((m) => m.chargedAtomic);
  const authorized = sum((m) => m.authorizedAtomic);
  const saved = sum((m) => m.savedAtomic);
  const payments = models.reduce((total, m) => total + m.requests, 0);
  const short = (channels ?? []).filter((c) => c.shortfallAtomic > 0n);
  const shortfallAtomic = short.reduce((total, c) => total + c.shortfallAtomic, 0n);

  const byBucket = new Map(revenue.map((bucket) => [bucket.start.getTime(), bucket]));
  const points = Array.from({ length: buckets }, (_, i) => {
    const start = since.getTime() + i * bucketSeconds * 1000;
    const bucket = byBucket.get(start);
    const atomic = bucket?.chargedAtomic ?? 0n;
    return {
      label: new Date(start).toISOString().slice(11, 16),
      value: Number(atomic),
      display: `${formatMoney(atomic)} (${bucket?.payments ?? 0} payment${bucket?.payments === 1 ? "" : "s"})`,
    };
  });

  const sections: DashboardSection[] = [
    {
      id: "totals",
      title: "Totals",
      html: renderFigures([
        {
          key: "charged",
          label: "Revenue (charged)",
          value: formatMoney(charged),
          ...(channels
            ? { note: "settled, or by voucher on a channel: see Channels for claimed and settled" }
            : {}),
        },
        { key: "authorized", label: "Authorized", value: formatMoney(authorized) },
        {
          key: "saved",
          label: "Saved",
          value: formatMoney(saved),
          note: "authorized (upto or voucher), not charged",
        },
        { key: "payments", label: "Paid requests", value: String(payments) },
        {
          key: "open-debts",
          label: "Open debts",
          value: String(backlog.openDebts),
          note: formatMoney(backlog.owedAtomic),
        },
        ...(channels
          ? [
              {
                key: "channel-shortfalls",
                label: "Channel shortfalls",
                value: String(short.length),
                note: `${formatMoney(shortfallAtomic)} owed beyond escrow`,
              },
            ]
          : []),
        {
          key: "backlog",
          label: "Settlement backlog",
          value: String(backlog.settlementBacklog),
          note: formatMoney(backlog.backlogAtomic),
        },
      ]),
    },
    {
      id: "revenue",
      title: `Revenue per ${bucketSeconds >= 3600 ? `${bucketSeconds / 3600} h` : `${bucketSeconds / 60} min`}, last ${buckets}`,
      html: renderBarChart({ points, empty: "no revenue yet", name: "revenue" }),
    },
    {
      id: "models",
      title: "Per model",
      html: renderTable({
        name: "models",
        headers: [
          "model",
          "requests",
          "input tokens",
          "output tokens",
          "authorized",
          "charged",
          "saved (authorized − charged)",
          "owed",
        ],
        rows: models.map((m) => [
          escapeHtml(m.model),
          String(m.requests),
          String(m.promptTokens),
          String(m.completionTokens),
          cellMoney(m.authorizedAtomic),
          cellMoney(m.chargedAtomic),
          cellMoney(m.savedAtomic),
          cellMoney(m.owedAtomic),
        ]),
        empty: "no paid request yet",
      }),
    },
    {
      id: "recent",
      title: "Recent payments",
      html: renderTable({
        name: "recent",
        headers: ["time", "payer", "model", "status", "charge", "of maximum", "transaction", "request id"],
        rows: recent.map((p) => [
          escapeHtml(p.createdAt.toISOString().slice(11, 19)),
          shortHex(p.payer),
          escapeHtml(p.model),
          `<span class="${p.status === "debt" || p.status === "failed" ? "bad" : p.status === "settled" ? "good" : ""}">${escapeHtml(p.status)}</span>`,
          p.chargeAtomic === null ? "—" : cellMoney(p.chargeAtomic),
          cellMoney(p.maxAtomic),
          shortHex(p.transaction),
          p.requestId ? `<span class="mono">${escapeHtml(p.requestId)}</span>` : "—",
        ]),
        empty: "no payment yet",
      }),
    },
    {
      id: "debts",
      title: "Open debts",
      html: renderTable({
        name: "debts",
        headers: ["since", "payer", "model", "owed", "reason"],
        rows: debts.map((p) => [
          escapeHtml(p.updatedAt.toISOString().replace("T", " ").slice(0, 19)),
          shortHex(p.payer),
          escapeHtml(p.model),
          cellMoney(p.chargeAtomic ?? 0n),
          escapeHtml(p.error ?? ""),
        ]),
        empty: "no open debt",
      }),
    },
  ];
  if (channels)
    sections.push({
      id: "channels",
      title: "Payment channels",
      html: renderTable({
        name: "channels",
        headers: ["channel", "payer", "deposit", "charged", "claimed", "owed", "status"],
        rows: channels.map((c) => [
          shortHex(c.channelId),
          shortHex(c.payer),
          cellMoney(c.depositAtomic),
          cellMoney(c.chargedAtomic),
          cellMoney(c.claimedAtomic),
          c.shortfallAtomic > 0n ? cellMoney(c.shortfallAtomic) : "—",
          c.status === "short" ? `<span class="bad">short</span>` : escapeHtml(c.status),
        ]),
        empty: "no channel open",
      }),
    });

  return {
    updatedAt: new Date(now).toISOString(),
    figures: {
      chargedAtomic: charged.toString(),
      authorizedAtomic: authorized.toString(),
      savedAtomic: saved.toString(),
      owedAtomic: backlog.owedAtomic.toString(),
      openDebts: backlog.openDebts,
      channelShortfalls: short.length,
      shortfallAtomic: shortfallAtomic.toString(),
      settlementBacklog: backlog.settlementBacklog,
      payments,
      models: models.map((m) => ({
        model: m.model,
        requests: m.requests,
        promptTokens: m.promptTokens,
        completionTokens: m.completionTokens,
        authorizedAtomic: m.authorizedAtomic.toString(),
        chargedAtomic: m.chargedAtomic.toString(),
        savedAtomic: m.savedAtomic.toString(),
        owedAtomic: m.owedAtomic.toString(),
      })),
      recent: recent.map(recentFigure),
    },
    sections,
  };
}

function recentFigure(p: PaymentRecord): Record<string, string | number | null> {
  return {
    id: p.id,
    requestId: p.requestId,
    payer: p.payer,
    model: p.model,
    status: p.status,
    chargeAtomic: p.chargeAtomic?.toString() ?? null,
    maxAtomic: p.maxAtomic.toString(),
    transaction: p.transaction,
  };
}
