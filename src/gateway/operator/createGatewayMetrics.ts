import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { LedgerInsights } from "../../ledger/index.js";
import type { BillingEventListener } from "../BillingEvent.js";

export type CreateGatewayMetricsParameters = {
  /** Where the families are registered; a new one by default (one per gateway). */
  registry?: Registry;
  /** The ledger's aggregates: the gauges read it at each scrape. */
  insights: LedgerInsights;
};

export type GatewayMetrics = {
  registry: Registry;
  /** Feeds the counters and histograms; give it to `createBilling` as `onBillingEvent`. */
  onBillingEvent: BillingEventListener;
};

const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Distinct `route` label values a gateway's metrics name; a request on any other is counted under
 * `other`. The gateway's own routes are a handful, but a billed route of a seller's own may take a path
 * parameter a client chooses (`/t/:tenant/...`): without a bound each new value would be one more series,
 * kept for the process's life, on every scrape and in the operator's Prometheus.
 */
export const ROUTE_LABELS_KEPT = 64;

/**
 * The gateway's Prometheus families (names are part of Tollgate's interface; see the README):
 * requests, payments, revenue and authorized money, usage, verify / settle / first-output latency,
 * and two gauges read from the ledger, open debts and the settlement backlog.
 */
export function createGatewayMetrics({
  registry = new Registry(),
  insights,
}: CreateGatewayMetricsParameters): GatewayMetrics {
  const registers = [registry];
  const requests = new Counter({
    name: "tollgate_requests_total",
    help: "Billed requests by route, model and the HTTP status they were answered with.",
    labelNames: ["route", "model", "status"] as const,
    registers,
  });
  const payments = new Counter({
    name: "tollgate_payments_total",
    help: "Payments by scheme and outcome (settled, zero, debt, failed, refused, replayed).",
    labelNames: ["scheme", "outcome"] as const,
    registers,
  });
  const revenue = new Counter({
    name: "tollgate_revenue_atomic_total",
    help: "Charges settled, in the asset's atomic units.",
    labelNames: ["model", "asset"] as const,
    registers,
  });
  const authorized = new Counter({
    name: "tollgate_authorized_atomic_total",
    help: "Maxima buyers authorized on claimed payments, in the asset's atomic units.",
    labelNames: ["model", "asset"] as const,
    registers,
  });
  const usage = new Counter({
    name: "tollgate_usage_total",
    help: "Usage metered and charged, by model and unit (input_tokens, output_tokens).",
    labelNames: ["model", "unit"] as const,
    registers,
  });
  const channelMoney = new Counter({
    name: "tollgate_channel_atomic_total",
    help: "Money moved on payment channels (batch-settlement), by kind: deposit, claim, settle.",
    labelNames: ["network", "kind"] as const,
    registers,
  });
  const settleDuration = new Histogram({
    name: "tollgate_settle_duration_seconds",
    help: "Time from the recorded charge to the facilitator's settlement answer.",
    buckets: latencyBuckets,
    registers,
  });
  const verifyDuration = new Histogram({
    name: "tollgate_verify_duration_seconds",
    help: "Time the facilitator took to verify a payment.",
    buckets: latencyBuckets,
    registers,
  });
  const ttft = new Histogram({
    name: "tollgate_ttft_seconds",
    help: "Time from a paid request's arrival to its first output leaving for the buyer.",
    labelNames: ["model"] as const,
    buckets: latencyBuckets,
    registers,
  });
  // One ledger read per scrape serves both gauges.
  let backlog: ReturnType<LedgerInsights["backlog"]> | undefined;
  const readBacklog = () => {
    backlog ??= insights.backlog().finally(() => {
      setImmediate(() => {
        backlog = undefined;
      });
    });
    return backlog;
  };
  new Gauge({
    name: "tollgate_open_debts",
    help: "Payments delivered whose settlement failed and is unpaid (ledger status debt).",
    registers,
    async collect() {
      this.set((await readBacklog()).openDebts);
    },
  });
  new Gauge({
    name: "tollgate_channel_shortfalls",
    help: "Payment channels a claim found short: their escrow held less than was charged on them (the payer withdrew first), and their payers owe the rest.",
    registers,
    async collect() {
      this.set((await readBacklog()).shortChannels);
    },
  });
  new Gauge({
    name: "tollgate_settlement_backlog",
    help: "Payments delivered whose settlement has not finished (ledger status metered or settling).",
    registers,
    async collect() {
      this.set((await readBacklog()).settlementBacklog);
    },
  });

  const routes = new Set<string>();
  const routeLabel = (route: string) => {
    if (routes.has(route)) return route;
    if (routes.size >= ROUTE_LABELS_KEPT) return "other";
    routes.add(route);
    return route;
  };

  const onBillingEvent: BillingEventListener = function recordBillingMetrics(event) {
    switch (event.type) {
      case "quoted":
      case "replayed":
        requests.inc({ route: routeLabel(event.route), model: event.model, status: String(event.status) });
        if (event.type === "replayed") payments.inc({ scheme: event.scheme, outcome: "replayed" });
        return;
      case "refused":
        requests.inc({
          route: routeLabel(event.route),
          model: event.model ?? "",
          status: String(event.status),
        });
        if (event.scheme !== undefined) payments.inc({ scheme: event.scheme, outcome: "refused" });
        if (event.verifyMs !== undefined) verifyDuration.observe(event.verifyMs / 1000);
        return;
      case "verified":
        authorized.inc({ model: event.model, asset: event.asset }, Number(event.maxAtomic));
        verifyDuration.observe(event.verifyMs / 1000);
        return;
      case "served":
        ttft.observe({ model: event.model }, event.ttftMs / 1000);
        return;
      case "metered":
        requests.inc({ route: routeLabel(event.route), model: event.model, status: "200" });
        for (const [unit, amount] of Object.entries(event.usage))
          if (amount !== undefined) usage.inc({ model: event.model, unit }, amount);
        return;
      case "settled":
        payments.inc({ scheme: event.scheme, outcome: event.chargeAtomic === 0n ? "zero" : "settled" });
        revenue.inc({ model: event.model, asset: event.asset }, Number(event.chargeAtomic));
        settleDuration.observe(event.settleMs / 1000);
        return;
      case "debt":
        payments.inc({ scheme: event.scheme, outcome: "debt" });
        settleDuration.observe(event.settleMs / 1000);
        return;
      case "failed":
        requests.inc({ route: routeLabel(event.route), model: event.model, status: String(event.status) });
        payments.inc({ scheme: event.scheme, outcome: "failed" });
        return;
      case "channel_deposit":
      case "channel_claim":
      case "channel_settle":
      case "channel_refund":
        channelMoney.inc(
          { network: event.network, kind: event.type.slice("channel_".length) },
          Number(event.amountAtomic),
        );
        return;
      default:
        return;
    }
  };
  return { registry, onBillingEvent };
}
