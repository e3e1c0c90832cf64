import { randomBytes } from "node:crypto";
import type { PayerQuotaScope, PayerQuotas, TakePayerQuotaResult } from "./PayerQuotas.js";
import type { SqlClient, SqlExecutor } from "./SqlClient.js";

/** A `PayerQuotas` over the ledger's `payer_quota_uses` table (see `applyMigrations`). */
export function createPayerQuotas(sql: SqlClient): PayerQuotas {
  const usesIn = async (executor: SqlExecutor, scope: PayerQuotaScope): Promise<number[]> => {
    const rows = await executor.query<{ used_at_ms: string }>(
      `SELECT used_at_ms::text AS used_at_ms FROM payer_quota_uses
        WHERE kind = $1 AND network = $2 AND payer = $3 AND used_at_ms > $4
        ORDER BY used_at_ms`,
      [scope.kind, scope.network, scope.payer.toLowerCase(), scope.sinceMs ?? -1],
    );
    return rows.map((row) => Number(row.used_at_ms));
  };
  return {
    uses: (scope) => usesIn(sql, scope),
    take: (scope) =>
      sql.transaction(async (tx): Promise<TakePayerQuotaResult> => {
        const payer = scope.payer.toLowerCase();
        // One payer's takes of one kind wait for each other, on every replica: counting and adding in
        // one step is what keeps two of them from both taking the last use.
        await tx.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [
          `payer_quota|${scope.kind}|${scope.network}|${payer}`,
        ]);
        if (scope.sinceMs !== undefined)
          await tx.query(
            "DELETE FROM payer_quota_uses WHERE kind = $1 AND network = $2 AND payer = $3 AND used_at_ms <= $4",
            [scope.kind, scope.network, payer, scope.sinceMs],
          );
        const usedAtMs = await usesIn(tx, scope);
        if (usedAtMs.length >= scope.limit) return { taken: false, usedAtMs };
        const id = randomBytes(12).toString("hex");
        await tx.query(
          "INSERT INTO payer_quota_uses (id, kind, network, payer, used_at_ms) VALUES ($1, $2, $3, $4, $5)",
          [id, scope.kind, scope.network, payer, scope.atMs],
        );
        return { taken: true, id };
      }),
    async giveBack(id) {
      await sql.query("DELETE FROM payer_quota_uses WHERE id = $1", [id]);
    },
  };
}

/** Payers a process without a ledger keeps the uses of; past it, the one counted first is forgotten. */
const PAYERS_KEPT = 10_000;

/**
 * A `PayerQuotas` in this process's memory, for a facilitator run without a ledger: its uses are this
 * process's only, and a restart forgets them.
 */
export function createMemoryPayerQuotas(): PayerQuotas {
  const uses = new Map<string, { id: string; atMs: number }[]>();
  const keyOf = (scope: PayerQuotaScope) => `${scope.kind}|${scope.network}|${scope.payer.toLowerCase()}`;
  const inScope = (scope: PayerQuotaScope) =>
    (uses.get(keyOf(scope)) ?? []).filter((use) => use.atMs > (scope.sinceMs ?? -1));
  return {
    uses: async (scope) => inScope(scope).map((use) => use.atMs),
    async take(scope) {
      const kept = inScope(scope);
      if (kept.length >= scope.limit) return { taken: false, usedAtMs: kept.map((use) => use.atMs) };
      const id = randomBytes(12).toString("hex");
      const key = keyOf(scope);
      uses.delete(key);
      uses.set(key, [...kept, { id, atMs: scope.atMs }]);
      if (uses.size > PAYERS_KEPT) uses.delete(uses.keys().next().value as string);
      return { taken: true, id };
    },
    async giveBack(id) {
      for (const [key, list] of uses) {
        const left = list.filter((use) => use.id !== id);
        if (left.length === list.length) continue;
        if (left.length === 0) uses.delete(key);
        else uses.set(key, left);
        return;
      }
    },
  };
}
