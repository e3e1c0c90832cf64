import type { SqlExecutor } from "./SqlClient.js";
import { SHORT_CHANNEL } from "./singleProcessBook.js";

/** What is owed and what waits to be settled, right now. */
export type LedgerBacklog = {
  /** Rows in `debt`: delivered, settlement failed, unpaid. */
  openDebts: number;
  owedAtomic: bigint;
  /** Rows in `metered` or `settling`: delivered, their settlement not finished yet. */
  settlementBacklog: number;
  backlogAtomic: bigint;
  /** Channels a claim found short (their escrow, all claimed, holds less than was charged): their payers owe the rest. */
  shortChannels: number;
  shortfallAtomic: bigint;
};

/** Settled money in one time bucket. */
export type RevenueBucket = { start: Date; chargedAtomic: bigint; payments: number };

/** One model's requests, usage and money, over every row. */
export type ModelInsight = {
  model: string;
  /** Rows of any status. */
  requests: number;
  promptTokens: number;
  completionTokens: number;
  /** Sum of authorized maxima, every row. */
  authorizedAtomic: bigint;
  /** Sum of settled charges. */
  chargedAtomic: bigint;
  /** Authorized but not charged on finished rows (settled, zero, failed): what `upto` saved buyers. */
  savedAtomic: bigint;
  /** Charges delivered but unpaid (debt). */
  owedAtomic: bigint;
};

/** Read-only aggregates of the payments table, for metrics and the dashboard. */
export type LedgerInsights = {
  backlog(): Promise<LedgerBacklog>;
  /** Settled charges per `bucketSeconds` since `since`, oldest first; empty buckets are left out. */
  revenueOverTime(options: { since: Date; bucketSeconds: number }): Promise<RevenueBucket[]>;
  models(): Promise<ModelInsight[]>;
};

/**
 * Aggregates over the `payments` table. Money leaves SQL as text and becomes bigint.
 * @example
 * const { openDebts } = await createLedgerInsights(sql).backlog();
 */
export function createLedgerInsights(sql: SqlExecutor): LedgerInsights {
  return {
    async backlog() {
      const [row] = await sql.query<{ debts: string; owed: string; backlog: string; pending: string }>(
        `SELECT count(*) FILTER (WHERE status = 'debt')::text AS debts,
                coalesce(sum(charge_atomic) FILTER (WHERE status = 'debt'), 0)::text AS owed,
                count(*) FILTER (WHERE status IN ('metered', 'settling'))::text AS backlog,
                coalesce(sum(charge_atomic) FILTER (WHERE status IN ('metered', 'settling')), 0)::text AS pending
         FROM payments WHERE status IN ('debt', 'metered', 'settling')`,
      );
      const [short] = await sql.query<{ channels: string; shortfall: string }>(
        `SELECT count(*)::text AS channels, coalesce(sum(charged_atomic - balance_atomic), 0)::text AS shortfall
         FROM channels WHERE ${SHORT_CHANNEL}`,
      );
      return {
        openDebts: Number(row?.debts ?? 0),
        owedAtomic: BigInt(row?.owed ?? 0),
        settlementBacklog: Number(row?.backlog ?? 0),
        backlogAtomic: BigInt(row?.pending ?? 0),
        shortChannels: Number(short?.channels ?? 0),
        shortfallAtomic: BigInt(short?.shortfall ?? 0),
      };
    },

    async revenueOverTime({ since, bucketSeconds }) {
      const bucket = Math.max(1, Math.trunc(bucketSeconds));
      const rows = await sql.query<{ bucket: string; charged: string; payments: string }>(
        `SELECT (floor(extract(epoch FROM settled_at) / $2) * $2)::bigint::text AS bucket,
                sum(charge_atomic)::text AS charged, count(*)::text AS payments
         FROM payments WHERE status = 'settled' AND settled_at >= $1
         GROUP BY 1 ORDER BY 1`,
        [since.toISOString(), bucket],
      );
      return rows.map((row) => ({
        start: new Date(Number(row.bucket) * 1000),
        chargedAtomic: BigInt(row.charged),
        payments: Number(row.payments),
      }));
    },

    async models() {
      const rows = await sql.query<Record<string, string>>(
        `SELECT model, count(*)::text AS requests,
                coalesce(sum(prompt_tokens), 0)::text AS prompt,
                coalesce(sum(completion_tokens), 0)::text AS completion,
                sum(max_atomic)::text AS authorized,
                coalesce(sum(charge_atomic) FILTER (WHERE status = 'settled'), 0)::text AS charged,
                coalesce(sum(max_atomic - coalesce(charge_atomic, 0))
                         FILTER (WHERE status IN ('settled', 'zero', 'failed')), 0)::text AS saved,
                coalesce(sum(charge_atomic) FILTER (WHERE status = 'debt'), 0)::text AS owed
         FROM payments GROUP BY model ORDER BY model`,
      );
      return rows.map((row) => ({
        model: String(row.model),
        requests: Number(row.requests),
        promptTokens: Number(row.prompt),
        completionTokens: Number(row.completion),
        authorizedAtomic: BigInt(row.authorized ?? 0),
        chargedAtomic: BigInt(row.charged ?? 0),
        savedAtomic: BigInt(row.saved ?? 0),
        owedAtomic: BigInt(row.owed ?? 0),
      }));
    },
  };
}
