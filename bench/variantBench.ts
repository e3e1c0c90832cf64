// Direct, Tollgate (upto), the official middleware and Tollgate paid by channel, side by side in one
// run: each measurement is split in rounds and the variants take turns, so drift on a noisy machine
// lands on all of them alike. Channels are opened (one deposit per buyer) before the measurements,
// and those deposit requests are reported on their own.
import {
  type BenchBuyer,
  isUnpaid,
  type RequestTiming,
  sendRequest,
  type UnpaidVariant,
  type Variant,
  variants,
} from "./payingClient.js";
import { backendProfiles, type SampleCounts } from "./settings.js";
import { runConcurrently, type Summary, summarize } from "./stats.js";

export type Concurrency = 1 | 8 | 32;
export const concurrencies: readonly Concurrency[] = [1, 8, 32];

export type VariantFigures = {
  /** Non-streaming, whole buyer flow (402, signing, paid request). */
  latency: Summary;
  /** Non-streaming, the paid request only. */
  paidLatency: Summary;
  /** Streaming time to first token, whole buyer flow. */
  ttft: Summary;
  /** Streaming time to first token from sending the paid request. */
  paidTtft: Summary;
  /** Streaming, whole response (receipt included), whole buyer flow. */
  streamTotal: Summary;
  /** The unpaid request's 402 round trip. */
  paymentRequired: Summary;
  /** Building and signing the payment. */
  sign: Summary;
  /** Paid streaming requests per second (1 s generations), by concurrency. */
  rps: Record<Concurrency, number>;
  /** Whole-flow time of the throughput requests, by concurrency. */
  rpsLatency: Record<Concurrency, Summary>;
  requests: number;
  errors: number;
  /** Channels: the requests that opened a channel (one deposit each, non-streaming, one at a time). */
  deposits: Summary;
  /** Their deposit transactions. */
  depositTransactions: string[];
  /** Settlement transactions of the measured paid requests (upto: one per request; channels: none). */
  transactions: string[];
  /** Channel payments refused by the corrective 402 and paid again after the client resynced. */
  resyncs: number;
  firstError?: string;
  /** Wall-clock windows (epoch ms) of this variant's one-at-a-time measurements, to match server logs. */
  sequentialWindows: Array<[number, number]>;
};

export type VariantBenchParameters = {
  /** Base URL (with `/v1`) of a variant for a model (direct calls each model's own backend). */
  baseUrlFor: (variant: Variant, model: string) => string;
  /** One buyer per worker (at least 32) for a paid variant. */
  buyersFor: (variant: Exclude<Variant, UnpaidVariant>) => readonly BenchBuyer[];
  counts: SampleCounts;
  /** The variants to run (all by default); the others report no figures. */
  only?: readonly Variant[];
  log: (line: string) => void;
};

type Collected = {
  windows: Array<[number, number]>;
  latency: RequestTiming[];
  ttft: RequestTiming[];
  rps: Partial<Record<Concurrency, { timings: RequestTiming[]; wallMs: number }>>;
  deposits: RequestTiming[];
  errors: number;
  firstError?: string;
};

/** The variants in a different order each round. */
function rotated(selected: readonly Variant[], round: number): Variant[] {
  return selected.map((_, i) => selected[(i + round) % selected.length]!);
}

/** Runs every variant measurement; see {@link VariantFigures}. */
export async function runVariantBench({
  baseUrlFor,
  buyersFor,
  counts,
  only = variants,
  log,
}: VariantBenchParameters): Promise<Record<Variant, VariantFigures>> {
  const selected = variants.filter((variant) => only.includes(variant));
  const fresh = (): Collected => ({ windows: [], latency: [], ttft: [], rps: {}, deposits: [], errors: 0 });
  const collected: Record<Variant, Collected> = {
    direct: fresh(),
    proxy: fresh(),
    tollgate: fresh(),
    official: fresh(),
    channels: fresh(),
  };
  const buyerOf = (variant: Variant, worker: number) =>
    isUnpaid(variant) ? undefined : buyersFor(variant)[worker];

  const send = async (variant: Variant, model: string, stream: boolean, worker: number) => {
    const timing = await sendRequest({
      baseUrl: baseUrlFor(variant, model),
      model,
      stream,
      buyer: buyerOf(variant, worker),
    });
    if (!timing.ok) {
      collected[variant].errors++;
      collected[variant].firstError ??= timing.error;
    }
    return timing;
  };
  const sequential = async (variant: Variant, model: string, stream: boolean, count: number) => {
    const timings: RequestTiming[] = [];
    for (let i = 0; i < count; i++) timings.push(await send(variant, model, stream, 0));
    return timings;
  };

  let depositErrors = 0;
  if (selected.includes("channels")) {
    const workers = concurrencies[concurrencies.length - 1]!;
    log(`variants: channels: opening ${workers} channels (one deposit each)`);
    for (let worker = 0; worker < workers; worker++) {
      const timing = await send("channels", backendProfiles.latency.model, false, worker);
      collected.channels.deposits.push(timing);
      if (timing.ok && !timing.deposit) {
        timing.ok = false;
        timing.error = "the channel's first request carried no deposit";
        collected.channels.firstError ??= timing.error;
      }
      if (!timing.ok) depositErrors++;
    }
  }

  log("variants: warm-up");
  for (const variant of selected) {
    await sequential(variant, backendProfiles.latency.model, false, counts.warmup);
    await sequential(variant, backendProfiles.streaming.model, true, 2);
  }
  for (const variant of selected) collected[variant].errors = variant === "channels" ? depositErrors : 0;

  const perRound = (total: number) => Math.max(1, Math.round(total / counts.rounds));
  for (let round = 0; round < counts.rounds; round++) {
    log(`variants: non-streaming latency, round ${round + 1}/${counts.rounds}`);
    for (const variant of rotated(selected, round)) {
      const startedAt = Date.now();
      const timings = await sequential(
        variant,
        backendProfiles.latency.model,
        false,
        perRound(counts.latencyRequests),
      );
      const window: [number, number] = [startedAt, Date.now()];
      collected[variant].latency.push(...timings);
      collected[variant].windows.push(window);
    }
  }
  for (let round = 0; round < counts.rounds; round++) {
    log(`variants: streaming TTFT, round ${round + 1}/${counts.rounds}`);
    for (const variant of rotated(selected, round)) {
      const startedAt = Date.now();
      const timings = await sequential(
        variant,
        backendProfiles.streaming.model,
        true,
        perRound(counts.ttftRequests),
      );
      const window: [number, number] = [startedAt, Date.now()];
      collected[variant].ttft.push(...timings);
      collected[variant].windows.push(window);
    }
  }
  for (const [i, concurrency] of concurrencies.entries()) {
    for (const variant of rotated(selected, i)) {
      const total = concurrency * counts.rpsRequestsPerWorker[concurrency];
      log(`variants: ${variant} throughput, concurrency ${concurrency}, ${total} streaming requests`);
      const timings: RequestTiming[] = [];
      const wallMs = await runConcurrently(total, concurrency, async (_, worker) => {
        timings.push(await send(variant, backendProfiles.streaming.model, true, worker));
      });
      collected[variant].rps[concurrency] = { timings, wallMs };
    }
  }

  const figures = {} as Record<Variant, VariantFigures>;
  for (const variant of variants) {
    const c = collected[variant];
    // Deposits were all made when the channels opened; a measured request that deposited is an error.
    const measured = [...c.latency, ...c.ttft, ...Object.values(c.rps).flatMap((run) => run?.timings ?? [])];
    for (const timing of measured.filter((t) => t.ok && t.deposit)) {
      timing.ok = false;
      timing.error = "a measured channel request deposited again";
      c.errors++;
      c.firstError ??= timing.error;
    }
    const ok = (timings: readonly RequestTiming[]) => timings.filter((timing) => timing.ok);
    const of = (timings: readonly RequestTiming[], pick: (timing: RequestTiming) => number) =>
      summarize(ok(timings).map(pick));
    const paidFlows = [...c.latency, ...c.ttft];
    const rpsOf = (concurrency: Concurrency) => {
      const run = c.rps[concurrency];
      return run ? (ok(run.timings).length * 1000) / run.wallMs : Number.NaN;
    };
    const rpsLatencyOf = (concurrency: Concurrency) =>
      of(c.rps[concurrency]?.timings ?? [], (t) => t.totalMs);
    const all = [...paidFlows, ...Object.values(c.rps).flatMap((run) => run?.timings ?? [])];
    figures[variant] = {
      latency: of(c.latency, (t) => t.totalMs),
      paidLatency: of(c.latency, (t) => t.paidTotalMs),
      ttft: of(c.ttft, (t) => t.ttftMs),
      paidTtft: of(c.ttft, (t) => t.paidTtftMs),
      streamTotal: of(c.ttft, (t) => t.totalMs),
      paymentRequired: of(paidFlows, (t) => t.paymentRequiredMs),
      sign: of(paidFlows, (t) => t.signMs),
      rps: { 1: rpsOf(1), 8: rpsOf(8), 32: rpsOf(32) },
      rpsLatency: { 1: rpsLatencyOf(1), 8: rpsLatencyOf(8), 32: rpsLatencyOf(32) },
      requests: all.length,
      errors: c.errors,
      deposits: of(c.deposits, (t) => t.totalMs),
      depositTransactions: ok(c.deposits).flatMap((t) => (t.transaction ? [t.transaction] : [])),
      transactions: ok(all).flatMap((t) => (t.transaction ? [t.transaction] : [])),
      resyncs: [...all, ...c.deposits].filter((t) => t.resynced).length,
      sequentialWindows: c.windows,
      ...(c.firstError ? { firstError: c.firstError } : {}),
    };
  }
  return figures;
}
