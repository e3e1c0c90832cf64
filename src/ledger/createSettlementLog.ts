import { z } from "zod";
import { TollgateError } from "../errors/index.js";
import { type AuthorizationKeyInput, normalizeAuthorizationKey } from "./normalizeAuthorizationKey.js";
import type { SettlementLog, SettlementRecord, SettlementStatus } from "./SettlementLog.js";
import type { SqlExecutor } from "./SqlClient.js";
import { atomicParam, jsonParam, textParam } from "./sqlValues.js";

const settlementColumns = `id, network, payer, nonce, status, amount_atomic::text AS amount_atomic, transaction,
  result, created_at, updated_at, completed_at`;
const keyMatch = "network = $1 AND payer = $2 AND nonce = $3";

const timestamp = z.union([z.date(), z.string()]).transform((value) => new Date(value));
const settlementRowSchema = z.object({
  id: z.union([z.number(), z.string(), z.bigint()]).transform((value) => Number(value)),
  network: z.string(),
  payer: z.string(),
  nonce: z.string(),
  status: z.enum(["in_flight", "succeeded", "failed"]),
  amount_atomic: z
    .string()
    .regex(/^[0-9]+$/)
    .transform((value) => BigInt(value)),
  transaction: z.string().nullable(),
  result: z.unknown(),
  created_at: timestamp,
  updated_at: timestamp,
  completed_at: timestamp.nullable(),
});

/** A `SettlementLog` over any `SqlClient` whose schema `applyMigrations` brought up to date. */
export function createSettlementLog(sql: SqlExecutor): SettlementLog {
  async function select(where: string, params: readonly unknown[]): Promise<SettlementRecord[]> {
    const rows = await sql.query(`SELECT ${settlementColumns} FROM settlements ${where}`, params);
    return rows.map(toSettlementRecord);
  }

  async function get(keyInput: AuthorizationKeyInput): Promise<SettlementRecord | undefined> {
    const key = normalizeAuthorizationKey(keyInput);
    const [record] = await select(`WHERE ${keyMatch}`, [key.network, key.payer, key.nonce]);
    return record;
  }

  /** Moves an in-flight settlement to its outcome; refuses any other starting status. */
  async function finish(
    keyInput: AuthorizationKeyInput,
    to: Exclude<SettlementStatus, "in_flight">,
    transaction: string | null,
    result: unknown,
  ): Promise<SettlementRecord> {
    const key = normalizeAuthorizationKey(keyInput);
    const rows = await sql.query(
      `UPDATE settlements SET status = $4, transaction = $5, result = $6::jsonb, completed_at = now(), updated_at = now()
       WHERE ${keyMatch} AND status = 'in_flight' RETURNING ${settlementColumns}`,
      [key.network, key.payer, key.nonce, to, transaction, jsonParam(result, "result")],
    );
    const [row] = rows;
    if (row !== undefined) return toSettlementRecord(row);
    const existing = await get(key);
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage:
        existing === undefined
          ? "settlement was never begun"
          : `settlement cannot move from ${existing.status} to ${to}`,
      details: { ...key, from: existing?.status, to },
    });
  }

  return {
    async begin(keyInput, amountAtomic) {
      const key = normalizeAuthorizationKey(keyInput);
      const rows = await sql.query(
        `INSERT INTO settlements (network, payer, nonce, amount_atomic) VALUES ($1, $2, $3, $4::numeric)
         ON CONFLICT (network, payer, nonce) DO NOTHING RETURNING ${settlementColumns}`,
        [key.network, key.payer, key.nonce, atomicParam(amountAtomic, "amountAtomic")],
      );
      const [row] = rows;
      if (row !== undefined) return { started: true, settlement: toSettlementRecord(row) };
      const existing = await get(key);
      if (existing === undefined) {
        throw new TollgateError({
          code: "TOLLGATE_LEDGER_FAILED",
          shortMessage: "settlement conflicted with a record that cannot be found",
          details: { ...key },
        });
      }
      return { started: false, existing };
    },

    complete: (key, { transaction, result }) =>
      finish(key, "succeeded", transaction === "" ? null : transaction, result),

    fail: (key, { result }) => finish(key, "failed", null, result),

    async retry(keyInput, amountAtomic) {
      const key = normalizeAuthorizationKey(keyInput);
      const rows = await sql.query(
        `UPDATE settlements SET status = 'in_flight', amount_atomic = $4::numeric, transaction = NULL, result = NULL,
                completed_at = NULL, updated_at = now()
         WHERE ${keyMatch} AND status = 'failed' RETURNING ${settlementColumns}`,
        [key.network, key.payer, key.nonce, atomicParam(amountAtomic, "amountAtomic")],
      );
      const [row] = rows;
      if (row !== undefined) return { started: true, settlement: toSettlementRecord(row) };
      const existing = await get(key);
      if (existing === undefined) {
        throw new TollgateError({
          code: "TOLLGATE_LEDGER_FAILED",
          shortMessage: "settlement to retry was never begun",
          details: { ...key },
        });
      }
      return { started: false, existing };
    },

    async reopen(keyInput, transaction) {
      const key = normalizeAuthorizationKey(keyInput);
      const rows = await sql.query(
        `UPDATE settlements SET status = 'in_flight', transaction = NULL, result = NULL, completed_at = NULL,
                updated_at = now()
         WHERE ${keyMatch} AND status = 'succeeded' AND transaction = $4 RETURNING id`,
        [key.network, key.payer, key.nonce, textParam(transaction, "transaction")],
      );
      return rows.length > 0;
    },

    get,

    async inFlight({ startedBefore } = {}) {
      return startedBefore === undefined
        ? select("WHERE status = 'in_flight' ORDER BY id", [])
        : select("WHERE status = 'in_flight' AND created_at < $1 ORDER BY id", [startedBefore.toISOString()]);
    },
  };
}

function toSettlementRecord(row: unknown): SettlementRecord {
  const parsed = settlementRowSchema.safeParse(row);
  if (!parsed.success) {
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `settlements row has an unexpected ${parsed.error.issues[0]?.path.join(".") ?? "shape"}`,
      details: { issues: parsed.error.issues },
      cause: parsed.error,
    });
  }
  const r = parsed.data;
  return {
    id: r.id,
    network: r.network,
    payer: r.payer,
    nonce: r.nonce,
    status: r.status,
    amountAtomic: r.amount_atomic,
    transaction: r.transaction,
    result: r.result,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    completedAt: r.completed_at,
  };
}
