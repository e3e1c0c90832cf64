// Turns the measurements into the JSON report, the ratios, the target verdicts and the stdout table.
import { cpus, loadavg, release, totalmem } from "node:os";
import type { FacilitatorFigures } from "./facilitatorBench.js";
import type { LedgerFigures } from "./ledgerBench.js";
import type { Variant } from "./payingClient.js";
import type { InSituFacilitator } from "./stackLog.js";
import { round, type Summary } from "./stats.js";
import type { VariantFigures } from "./variantBench.js";

export type Measurements = {
  variants: Record<Variant, VariantFigures>;
  facilitator: FacilitatorFigures;
  ledger: LedgerFigures;
  /** The serving stack's own verify/settle times during the one-at-a-time runs (from its log). */
  inSitu: Partial<Record<Variant, InSituFacilitator>>;
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
  ];
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
  const { direct, tollgate, official } = m.variants;
  const ratio = (a: number, b: number) => round(a / b, 3);
  return {
    machine,
    settings,
    results: {
      direct: variantJson(direct),
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
    },
    ratios: {
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
    },
    targets: judgeTargets(m),
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
  const { results, ratios, targets, facilitator } = report;
  const variantRows = (["direct", "tollgate", "official"] as const).map((name) => {
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
        [
          "tollgate / direct",
          cell(ratios.tollgate_over_direct.ttft_p50, 3),
          cell(ratios.tollgate_over_direct.latency_p50, 3),
          cell(ratios.tollgate_over_direct.rps_c1, 3),
          cell(ratios.tollgate_over_direct.rps_c8, 3),
          cell(ratios.tollgate_over_direct.rps_c32, 3),
        ],
        [
          "tollgate / official",
          cell(ratios.tollgate_over_official.ttft_p50, 3),
          cell(ratios.tollgate_over_official.latency_p50, 3),
          cell(ratios.tollgate_over_official.rps_c1, 3),
          cell(ratios.tollgate_over_official.rps_c8, 3),
          cell(ratios.tollgate_over_official.rps_c32, 3),
        ],
      ],
    ),
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
