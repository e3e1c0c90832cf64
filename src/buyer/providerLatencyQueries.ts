import type { SqlClient } from "../ledger/index.js";
import type { ProviderLatency, SpendStore } from "./SpendStore.js";

type LatencyMethods = Pick<SpendStore, "recordTimeToFirstToken" | "providerLatencies">;

/**
 * Weight of a new sample in the smoothed time to first token: recent requests count most, and
 * one slow request moves the figure by a third of the difference, not all of it.
 */
export const TTFT_SMOOTHING = 0.3;

/** The spend store's latency table: time to first token per provider and model, smoothed. */
export function providerLatencyQueries(sql: SqlClient): LatencyMethods {
  return {
    async recordTimeToFirstToken({ origin, model, ttftMs }) {
      if (!Number.isFinite(ttftMs) || ttftMs < 0) return;
      // One statement, so that concurrent requests each fold their sample in.
      await sql.query(
        `INSERT INTO provider_latency (origin, model, ttft_ms, samples)
         VALUES ($1, $2, $3::double precision, 1)
         ON CONFLICT (origin, model) DO UPDATE
            SET ttft_ms = provider_latency.ttft_ms + $4::double precision * (EXCLUDED.ttft_ms - provider_latency.ttft_ms),
                samples = provider_latency.samples + 1,
                updated_at = now()`,
        [origin, model, ttftMs, TTFT_SMOOTHING],
      );
    },
    async providerLatencies(): Promise<ProviderLatency[]> {
      const rows = await sql.query<{
        origin: string;
        model: string;
        ttft_ms: number | string;
        samples: number;
        updated_at: Date | string;
      }>(`SELECT origin, model, ttft_ms, samples, updated_at FROM provider_latency ORDER BY origin, model`);
      return rows.map((row) => ({
        origin: row.origin,
        model: row.model,
        ttftMs: Number(row.ttft_ms),
        samples: Number(row.samples),
        updatedAt: new Date(row.updated_at),
      }));
    },
  };
}
