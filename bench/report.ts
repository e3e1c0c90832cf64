// Turns the measurements into the JSON report, the ratios, the target verdicts and the stdout table.
import { cpus, loadavg, release, totalmem } from "node:os";
import { type ChannelGasFigures, channelGasPerRequest, gasUsd } from "./channelGas.js";
import type { FacilitatorFigures } from "./facilitatorBench.js";
import type { LedgerFigures } from "./ledgerBench.js";
import type { Variant } from "./payingClient.js";
import { amortisationRequests, gasPrices, revenuePerRequestUsd } from "./settings.js";
import type { InSituFacilitator } from "./stackLog.js";
import { round, type Summary } from "./stats.js";
import type { VariantFigures } from "./variantBench.js";

export type Measurements = {
  variants: Record<Variant, VariantFigures>;
  facilitator: FacilitatorFigures;
  ledger: LedgerFigures;
  /** The serving stack's own verify/settle times during the one-at-a-time runs (from its log). */
  inSitu: Partial<Record<Variant, InSituFacilitator>>;
  /** Gas of upto and of channels, from the run's transactions (when channels ran). */
  gas?: ChannelGasFigures | undefined;
};

export type TargetVerdict = { target: string; measured: string; met: boolean };

/** What the machine is, for the report (figures from a shared, noisy 2-core box are not absolutes). */
export function describeMachine(): Record<string, unknown> {
  const cores = cpus();
  return {
    cpu: cores[0]?.model ?? "unknown",
    cores: cores.length,
    memory_gib: round(totalmem() / 2 ** 30, 1),
    os: `${process.platform} ${release()}`,
    node: process.version,
    load_average_at_start: loadavg().map((value) => round(value, 2)),
  };
}

const ms = (value: number) => round(value, 2);

function variantJson(figures: VariantFigures, inSitu?: InSituFacilitator) {
  return {
    ttft_ms_p50: ms(figures.ttft.p50),
    ttft_ms_p99: ms(figures.ttft.p99),
    latency_ms_p50: ms(figures.latency.p50),
    latency_ms_p99: ms(figures.latency.p99),
    rps_c1: round(figures.rps[1], 2),
    rps_c8: round(figures.rps[8], 2),
    rps_c32: round(figures.rps[32], 2),
    paid_ttft_ms_p50: ms(figures.paidTtft.p50),
    paid_ttft_ms_p99: ms(figures.paidTtft.p99),
    paid_latency_ms_p50: ms(figures.paidLatency.p50),
    paid_latency_ms_p99: ms(figures.paidLatency.p99),
    stream_total_ms_p50: ms(figures.streamTotal.p50),
    stream_total_ms_p99: ms(figures.streamTotal.p99),
    rps_request_ms_p50: {
      c1: ms(figures.rpsLatency[1].p50),
      c8: ms(figures.rpsLatency[8].p50),
      c32: ms(figures.rpsLatency[32].p50),
    },
    requests: figures.requests,
    errors: figures.errors,
    ...(figures.firstError ? { first_error: figures.firstError } : {}),
    ...(inSitu
      ? {
          facilitator_in_situ: {
            verify_ms_p50: ms(inSitu.verify.p50),
            settle_ms_p50: ms(inSitu.settle.p50),
            n: inSitu.verify.n,
          },
        }
      : {}),
  };
}

/**
 * Chain time in one paid request: the facilitator's verify and settle as measured in-process, minus
 * their local CPU (a signature recovery in each — settle re-verifies — and signing the transaction).
 */
export function chainMsOf(facilitator: FacilitatorFigures): number {
  const recoveryMs = 1000 / facilitator.recoveryPerS;
  return facilitator.verify.p50 + facilitator.settle.p50 - (2 * recoveryMs + facilitator.signTransactionMs);
}

/** The four targets, each as measured in this run. */
export function judgeTargets(m: Measurements): TargetVerdict[] {
  const { direct, tollgate, official } = m.variants;
  const verifyMs = m.facilitator.verify.p50;
  const chainMs = chainMsOf(m.facilitator);
  const addedPaid = tollgate.paidLatency.p50 - direct.latency.p50 - chainMs;
  const addedFlow = tollgate.latency.p50 - direct.latency.p50 - chainMs;
  const verifyRatio = m.facilitator.verifyPerCoreS / m.facilitator.recoveryPerS;
  const f = (value: number) => (Number.isFinite(value) ? value.toFixed(1) : "n/a");
  const { channels, proxy } = m.variants;
  const perRequest = gasPerRequestRows(m.gas);
  // What a bare proxy (same server and backend client, no billing) adds in the same run: the floor.
  const floor = (paid: number, bare: number, base: number) =>
    `; a bare proxy: ${f(bare)} ms (direct + ${f(bare - base)}), so billing adds ${f(paid - bare)} ms over it`;
  const channelTargets: TargetVerdict[] = [
    ...perRequest.map((row) => ({
      target: `channel gas per paid request ≤ 1% of upto's (${row.requests} requests per channel, claimed with ${row.claimChannels - 1} others)`,
      measured: `${f(row.batched)} vs 1% × ${f(row.upto)} = ${f(row.upto / 100)} gas (${(100 * row.batchedOverUpto).toFixed(2)}%; claimed alone ${f(row.alone)} gas, ${(100 * row.aloneOverUpto).toFixed(2)}%)`,
      met: row.batchedOverUpto <= 0.01,
    })),
    {
      target: "channels TTFT (whole flow) ≤ direct + 3 ms",
      measured: `${f(channels.ttft.p50)} ms vs ${f(direct.ttft.p50)} + 3 = ${f(direct.ttft.p50 + 3)} ms (p50; paid request alone ${f(channels.paidTtft.p50)} ms${floor(channels.paidTtft.p50, proxy.ttft.p50, direct.ttft.p50)})`,
      met: channels.ttft.p50 <= direct.ttft.p50 + 3,
    },
    {
      target: "channels latency, non-streaming (whole flow) ≤ direct + 3 ms",
      measured: `${f(channels.latency.p50)} ms vs ${f(direct.latency.p50)} + 3 = ${f(direct.latency.p50 + 3)} ms (p50; paid request alone ${f(channels.paidLatency.p50)} ms${floor(channels.paidLatency.p50, proxy.latency.p50, direct.latency.p50)})`,
      met: channels.latency.p50 <= direct.latency.p50 + 3,
    },
  ];
  return [
    {
      target: "TTFT (paid request) ≤ direct + verify",
      measured: `${f(tollgate.paidTtft.p50)} ms vs ${f(direct.ttft.p50)} + ${f(verifyMs)} = ${f(direct.ttft.p50 + verifyMs)} ms (p50)`,
      met: tollgate.paidTtft.p50 <= direct.ttft.p50 + verifyMs,
    },
    {
      target: "TTFT (whole flow: 402, sign, paid) ≤ direct + verify",
      measured: `${f(tollgate.ttft.p50)} ms vs ${f(direct.ttft.p50 + verifyMs)} ms (p50)`,
      met: tollgate.ttft.p50 <= direct.ttft.p50 + verifyMs,
    },
    {
      target: "TTFT (whole flow) ≤ 0.1× official",
      measured: `${f(tollgate.ttft.p50)} ms vs 0.1 × ${f(official.ttft.p50)} = ${f(0.1 * official.ttft.p50)} ms (p50)`,
      met: tollgate.ttft.p50 <= 0.1 * official.ttft.p50,
    },
    {
      target: "added latency, c=1, chain time excluded ≤ 5 ms p50 (paid request)",
      measured: `${f(tollgate.paidLatency.p50)} − ${f(direct.latency.p50)} − chain ${f(chainMs)} = ${f(addedPaid)} ms`,
      met: addedPaid <= 5,
    },
    {
      target: "added latency, c=1, chain time excluded ≤ 5 ms p50 (whole flow)",
      measured: `${f(tollgate.latency.p50)} − ${f(direct.latency.p50)} − chain ${f(chainMs)} = ${f(addedFlow)} ms`,
      met: addedFlow <= 5,
    },
    {
      target: "streaming rps at c=32 ≥ 0.5× direct",
      measured: `${f(tollgate.rps[32])} vs ${f(direct.rps[32])} req/s (${f(tollgate.rps[32] / direct.rps[32])}×)`,
      met: tollgate.rps[32] >= 0.5 * direct.rps[32],
    },
    {
      target: "verify ≥ 0.8× signature-recovery limit of one core",
      measured: `${f(m.facilitator.verifyPerCoreS)} vs ${f(m.facilitator.recoveryPerS)} per core-second (${verifyRatio.toFixed(2)}×)`,
      met: verifyRatio >= 0.8,
    },
    ...channelTargets,
  ];
}

/** Per paid request: upto's settle gas, and a channel's at each amortisation length. */
export function gasPerRequestRows(gas: ChannelGasFigures | undefined) {
  if (!gas?.claimMany || !gas.claimOne) return [];
  const upto = gas.uptoSettle.mean;
  const deposit = gas.deposit.mean;
  const settle = gas.settle.mean;
  const claimChannels = gas.claimMany.channels;
  return amortisationRequests.map((requests) => {
    const alone = channelGasPerRequest(
      { deposit, claimGas: gas.claimOne!.gas, claimChannels: 1, settle },
      requests,
    );
    const batched = channelGasPerRequest(
      { deposit, claimGas: gas.claimMany!.gas, claimChannels, settle },
      requests,
    );
    return {
      requests,
      upto,
      alone,
      batched,
      claimChannels,
      aloneOverUpto: alone / upto,
      batchedOverUpto: batched / upto,
    };
  });
}

/** The seller's gas cost as a share of a request's price, upto against channels (claims batched). */
export function revenueShareRows(gas: ChannelGasFigures | undefined) {
  const rows = gasPerRequestRows(gas);
  if (rows.length === 0) return [];
  return gasPrices.flatMap((price) =>
    revenuePerRequestUsd.map((revenueUsd) => ({
      chain: price.chain,
      gas_price_gwei: price.gasPriceGwei,
      native_usd: price.nativeUsd,
      native_token: price.nativeToken,
      revenue_usd: revenueUsd,
      upto_share: gasUsd(rows[0]!.upto, price) / revenueUsd,
      channel_share: Object.fromEntries(
        rows.map((row) => [`requests_${row.requests}`, gasUsd(row.batched, price) / revenueUsd]),
      ),
    })),
  );
}

function summaryJson(summary: Summary) {
  return { p50: ms(summary.p50), p99: ms(summary.p99), mean: ms(summary.mean), n: summary.n };
}

/** The `--json` document. */
export function buildReport(
  m: Measurements,
  settings: Record<string, unknown>,
  machine: Record<string, unknown>,
) {
  const { direct, proxy, tollgate, official, channels } = m.variants;
  const ratio = (a: number, b: number) => round(a / b, 3);
  const channelsOver = (other: VariantFigures) => ({
    ttft_p50: ratio(channels.ttft.p50, other.ttft.p50),
    paid_ttft_p50: ratio(channels.paidTtft.p50, other.paidTtft.p50),
    latency_p50: ratio(channels.latency.p50, other.latency.p50),
    stream_total_p50: ratio(channels.streamTotal.p50, other.streamTotal.p50),
    rps_c1: ratio(channels.rps[1], other.rps[1]),
    rps_c8: ratio(channels.rps[8], other.rps[8]),
    rps_c32: ratio(channels.rps[32], other.rps[32]),
  });
  return {
    machine,
    settings,
    results: {
      direct: variantJson(direct),
      proxy: variantJson(proxy),
      tollgate: {
        ...variantJson(tollgate, m.inSitu.tollgate),
        stages: {
          payment_required_round_trip_ms: summaryJson(tollgate.paymentRequired),
          signing_ms: summaryJson(tollgate.sign),
          verify_ms: summaryJson(m.facilitator.verify),
          ledger_claim_ms: summaryJson(m.ledger.claim),
          inference_ms: summaryJson(direct.latency),
          inference_stream_ms: summaryJson(direct.streamTotal),
          settle_ms: summaryJson(m.facilitator.settle),
          ledger_write_ms: summaryJson(m.ledger.writes),
          verify_in_situ_ms: m.inSitu.tollgate ? summaryJson(m.inSitu.tollgate.verify) : null,
          settle_in_situ_ms: m.inSitu.tollgate ? summaryJson(m.inSitu.tollgate.settle) : null,
          chain_ms_p50: ms(chainMsOf(m.facilitator)),
          // The paid non-streaming request minus the stages measured apart: HTTP hops, parsing, and
          // what the pieces cost more inside the busy serving process than alone.
          unattributed_ms_p50: ms(
            tollgate.paidLatency.p50 -
              (m.facilitator.verify.p50 +
                m.ledger.claim.p50 +
                direct.latency.p50 +
                m.facilitator.settle.p50 +
                m.ledger.writes.p50),
          ),
        },
      },
      official: variantJson(official, m.inSitu.official),
      channels: {
        ...variantJson(channels),
        deposit_requests: summaryJson(channels.deposits),
        corrective_402_resyncs: channels.resyncs,
        stages: {
          payment_required_round_trip_ms: summaryJson(channels.paymentRequired),
          signing_ms: summaryJson(channels.sign),
        },
      },
    },
    ratios: {
      proxy_over_direct: {
        ttft_p50: ratio(proxy.ttft.p50, direct.ttft.p50),
        latency_p50: ratio(proxy.latency.p50, direct.latency.p50),
        rps_c1: ratio(proxy.rps[1], direct.rps[1]),
        rps_c8: ratio(proxy.rps[8], direct.rps[8]),
        rps_c32: ratio(proxy.rps[32], direct.rps[32]),
      },
      tollgate_over_direct: {
        ttft_p50: ratio(tollgate.ttft.p50, direct.ttft.p50),
        paid_ttft_p50: ratio(tollgate.paidTtft.p50, direct.ttft.p50),
        latency_p50: ratio(tollgate.latency.p50, direct.latency.p50),
        rps_c1: ratio(tollgate.rps[1], direct.rps[1]),
        rps_c8: ratio(tollgate.rps[8], direct.rps[8]),
        rps_c32: ratio(tollgate.rps[32], direct.rps[32]),
      },
      tollgate_over_official: {
        ttft_p50: ratio(tollgate.ttft.p50, official.ttft.p50),
        latency_p50: ratio(tollgate.latency.p50, official.latency.p50),
        stream_total_p50: ratio(tollgate.streamTotal.p50, official.streamTotal.p50),
        rps_c1: ratio(tollgate.rps[1], official.rps[1]),
        rps_c8: ratio(tollgate.rps[8], official.rps[8]),
        rps_c32: ratio(tollgate.rps[32], official.rps[32]),
      },
      channels_over_direct: channelsOver(direct),
      channels_over_proxy: channelsOver(proxy),
      channels_over_tollgate: channelsOver(tollgate),
      channels_over_official: channelsOver(official),
    },
    targets: judgeTargets(m),
    gas: m.gas
      ? {
          upto_settle: { mean: round(m.gas.uptoSettle.mean, 0), n: m.gas.uptoSettle.n },
          channel_deposit: { mean: round(m.gas.deposit.mean, 0), n: m.gas.deposit.n },
          channel_claim_one: m.gas.claimOne ?? null,
          channel_claim_many: m.gas.claimMany
            ? { ...m.gas.claimMany, per_channel: round(m.gas.claimMany.gas / m.gas.claimMany.channels, 0) }
            : null,
          channel_settle: { mean: round(m.gas.settle.mean, 0), n: m.gas.settle.n },
          per_paid_request: gasPerRequestRows(m.gas).map((row) => ({
            requests_per_channel: row.requests,
            upto: round(row.upto, 0),
            channel_claimed_alone: round(row.alone, 1),
            channel_claimed_batched: round(row.batched, 1),
            batched_claim_channels: row.claimChannels,
            alone_over_upto: round(row.aloneOverUpto, 5),
            batched_over_upto: round(row.batchedOverUpto, 5),
          })),
          seller_gas_share_of_revenue: revenueShareRows(m.gas),
        }
      : null,
    facilitator: {
      verify_per_s: round(m.facilitator.verifyPerS, 1),
      verify_per_core_s: round(m.facilitator.verifyPerCoreS, 1),
      recovery_per_s: round(m.facilitator.recoveryPerS, 1),
      verify_over_recovery: round(m.facilitator.verifyPerCoreS / m.facilitator.recoveryPerS, 3),
      verify_ms: summaryJson(m.facilitator.verify),
      settle_per_s: round(m.facilitator.settlePerS, 1),
      settle_ms: summaryJson(m.facilitator.settle),
      concurrent_settles: m.facilitator.concurrentSettles,
      settle_failures: m.facilitator.settleFailures,
      gas_per_upto_settle: round(m.facilitator.gasPerUptoSettle.mean, 0),
      sign_payment_ms: summaryJson(m.facilitator.signPayment),
      sign_transaction_ms: ms(m.facilitator.signTransactionMs),
    },
  };
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ");
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}

const cell = (value: number | null | undefined, digits = 1) =>
  value === null || value === undefined || !Number.isFinite(value) ? "n/a" : value.toFixed(digits);

/** The human-readable report for stdout. */
export function formatReport(report: ReturnType<typeof buildReport>): string {
  const { results, ratios, targets, facilitator, gas } = report;
  const variantRows = (["direct", "proxy", "tollgate", "official", "channels"] as const).map((name) => {
    const r = results[name];
    return [
      name,
      cell(r.latency_ms_p50),
      cell(r.latency_ms_p99),
      cell(r.ttft_ms_p50),
      cell(r.ttft_ms_p99),
      cell(r.paid_ttft_ms_p50),
      cell(r.stream_total_ms_p50),
      cell(r.rps_c1, 2),
      cell(r.rps_c8, 2),
      cell(r.rps_c32, 2),
      String(r.errors),
    ];
  });
  const stages = results.tollgate.stages;
  const stageRows = [
    ["402 round trip (buyer)", stages.payment_required_round_trip_ms],
    ["signing (buyer)", stages.signing_ms],
    ["verify (facilitator, micro)", stages.verify_ms],
    ["ledger claim (PGlite)", stages.ledger_claim_ms],
    ["inference, non-streaming (direct)", stages.inference_ms],
    ["inference, streaming (direct)", stages.inference_stream_ms],
    ["settle (tx + receipt, micro)", stages.settle_ms],
    ["ledger writes (PGlite)", stages.ledger_write_ms],
    ["verify in situ (stack log, c=1)", stages.verify_in_situ_ms],
    ["settle in situ (stack log, c=1, + settlement log)", stages.settle_in_situ_ms],
  ].map(([name, s]) => {
    const summary = (s ?? { p50: null, p99: null, n: 0 }) as {
      p50: number | null;
      p99: number | null;
      n: number;
    };
    return [name as string, cell(summary.p50, 2), cell(summary.p99, 2), String(summary.n)];
  });
  return [
    "",
    table(
      [
        "variant",
        "lat p50",
        "lat p99",
        "ttft p50",
        "ttft p99",
        "paid ttft p50",
        "stream p50",
        "rps c1",
        "rps c8",
        "rps c32",
        "errors",
      ],
      variantRows,
    ),
    "(ms; latency = non-streaming, whole buyer flow: 402 + signing + paid request; ttft/stream = streaming)",
    "",
    table(["tollgate stage", "p50 ms", "p99 ms", "n"], stageRows),
    `chain time per paid request (verify + settle minus their local CPU): ${cell(stages.chain_ms_p50, 2)} ms`,
    `paid non-streaming request ${cell(results.tollgate.paid_latency_ms_p50, 2)} ms p50, of which not in the stages above: ${cell(stages.unattributed_ms_p50, 2)} ms`,
    "",
    table(
      ["ratio", "ttft p50", "latency p50", "rps c1", "rps c8", "rps c32"],
      [
        ...(
          [
            ["proxy / direct", ratios.proxy_over_direct],
            ["tollgate / direct", ratios.tollgate_over_direct],
            ["tollgate / official", ratios.tollgate_over_official],
            ["channels / direct", ratios.channels_over_direct],
            ["channels / proxy", ratios.channels_over_proxy],
            ["channels / tollgate", ratios.channels_over_tollgate],
            ["channels / official", ratios.channels_over_official],
          ] as const
        ).map(([name, r]) => [
          name,
          cell(r.ttft_p50, 3),
          cell(r.latency_p50, 3),
          cell(r.rps_c1, 3),
          cell(r.rps_c8, 3),
          cell(r.rps_c32, 3),
        ]),
      ],
    ),
    `channels: ${results.channels.deposit_requests.n} deposit requests (opening the channels, one at a time, not in the figures above) p50 ${cell(results.channels.deposit_requests.p50, 2)} ms, p99 ${cell(results.channels.deposit_requests.p99, 2)} ms; corrective-402 resyncs: ${results.channels.corrective_402_resyncs}; 402 round trip p50 ${cell(results.channels.stages.payment_required_round_trip_ms.p50, 2)} ms, signing the voucher p50 ${cell(results.channels.stages.signing_ms.p50, 2)} ms`,
    ...formatGas(gas),
    "",
    table(
      ["facilitator", "value"],
      [
        ["signature recoveries per CPU-second (one core)", cell(facilitator.recovery_per_s)],
        ["verifications per CPU-second (16 in flight)", cell(facilitator.verify_per_core_s)],
        ["verifications / s (wall, 16 in flight)", cell(facilitator.verify_per_s)],
        [
          "verify p50 / p99 ms",
          `${cell(facilitator.verify_ms.p50, 2)} / ${cell(facilitator.verify_ms.p99, 2)}`,
        ],
        [
          `settles / s (${facilitator.concurrent_settles} concurrent, one key)`,
          cell(facilitator.settle_per_s),
        ],
        [
          "settle p50 / p99 ms",
          `${cell(facilitator.settle_ms.p50, 2)} / ${cell(facilitator.settle_ms.p99, 2)}`,
        ],
        ["gas per upto settle", cell(facilitator.gas_per_upto_settle, 0)],
        ["settle failures", String(facilitator.settle_failures)],
      ],
    ),
    "",
    table(
      ["target", "measured", "verdict"],
      targets.map((t) => [t.target, t.measured, t.met ? "met" : "MISSED"]),
    ),
    "",
  ].join("\n");
}

function formatGas(gas: ReturnType<typeof buildReport>["gas"]): string[] {
  if (!gas) return [];
  const count = (value: number | null) =>
    value === null || !Number.isFinite(value) ? "n/a" : Math.round(value).toLocaleString("en-US");
  const percent = (value: number | null) =>
    value === null || !Number.isFinite(value) ? "n/a" : `${(100 * value).toPrecision(3)}%`;
  const many = gas.channel_claim_many;
  return [
    "",
    table(
      ["gas (receipts of this run's transactions)", "gas", "n"],
      [
        ["upto settle (one per paid request)", count(gas.upto_settle.mean), String(gas.upto_settle.n)],
        ["channel deposit (one per channel)", count(gas.channel_deposit.mean), String(gas.channel_deposit.n)],
        [
          "channel claim, one channel alone",
          gas.channel_claim_one ? count(gas.channel_claim_one.gas) : "n/a",
          "1",
        ],
        [
          `channel claim, ${many?.channels ?? "n/a"} channels in one transaction (per channel)`,
          many ? `${count(many.gas)} (${count(many.per_channel)})` : "n/a",
          "1",
        ],
        [
          "channel settle to payTo (one transfer)",
          count(gas.channel_settle.mean),
          String(gas.channel_settle.n),
        ],
      ],
    ),
    "",
    table(
      [
        "gas per paid request",
        "channel claimed alone",
        "claimed in a batch",
        "upto",
        "alone / upto",
        "batch / upto",
      ],
      gas.per_paid_request.map((row) => [
        `${row.requests_per_channel} requests per channel`,
        cell(row.channel_claimed_alone, 1),
        cell(row.channel_claimed_batched, 1),
        count(row.upto),
        percent(row.alone_over_upto),
        percent(row.batched_over_upto),
      ]),
    ),
    "(a channel: (deposit + claim + settle) / requests, one deposit, one claim and one settle per channel; in a batch the claim and the settle are shared by all the batch's channels)",
    "",
    table(
      [
        "seller gas / revenue",
        "gas price",
        "request",
        "upto",
        ...gas.per_paid_request.map((row) => `channel, ${row.requests_per_channel} req`),
      ],
      gas.seller_gas_share_of_revenue.map((row) => [
        row.chain,
        `${row.gas_price_gwei} gwei, ${row.native_token} $${row.native_usd}`,
        `$${row.revenue_usd}`,
        percent(row.upto_share),
        ...Object.values(row.channel_share).map(percent),
      ]),
    ),
  ];
}
