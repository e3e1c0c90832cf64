// Small statistics for benchmark samples: percentiles, rates, rounding.

/** Summary of a list of durations in milliseconds. */
export type Summary = { n: number; p50: number; p99: number; mean: number; min: number; max: number };

/** The q-quantile (0..1) of `sorted` by nearest rank; NaN for no samples. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** p50, p99, mean, min and max of `samples`. */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const total = sorted.reduce((sum, value) => sum + value, 0);
  return {
    n: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    mean: sorted.length > 0 ? total / sorted.length : Number.NaN,
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** Rounds to `digits` decimals, keeping NaN as null so it survives JSON. */
export function round(value: number, digits = 2): number | null {
  if (!Number.isFinite(value)) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Runs `fn` repeatedly for about `durationMs` (at least `minRuns` times); returns operations per second. */
export async function opsPerSecond(
  fn: () => unknown,
  {
    durationMs,
    minRuns = 10,
    maxRuns = 1_000_000,
  }: { durationMs: number; minRuns?: number; maxRuns?: number },
): Promise<{ opsPerSecond: number; runs: number }> {
  const startedAt = performance.now();
  let runs = 0;
  while (runs < maxRuns && (runs < minRuns || performance.now() - startedAt < durationMs)) {
    await fn();
    runs++;
  }
  const elapsedMs = performance.now() - startedAt;
  return { opsPerSecond: (runs * 1000) / elapsedMs, runs };
}

/**
 * Runs `task(i)` for i in 0..count-1 with at most `concurrency` in flight (each worker gets a stable
 * `worker` index); returns the wall time in milliseconds.
 */
export async function runConcurrently(
  count: number,
  concurrency: number,
  task: (index: number, worker: number) => Promise<void>,
): Promise<number> {
  let next = 0;
  const startedAt = performance.now();
  const worker = async (id: number) => {
    while (next < count) {
      const index = next++;
      await task(index, id);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, (_, id) => worker(id)));
  return performance.now() - startedAt;
}

/** CPU seconds (user + system, all threads) this process spent on `work`. */
export async function cpuSecondsOf(work: () => Promise<unknown>): Promise<number> {
  const before = process.cpuUsage();
  await work();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1e6;
}
