import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import { normalizeAuthorizationKey, normalizePayer } from "./normalizeAuthorizationKey.js";
import type { PaymentLedger, PaymentModelTotals, PaymentRecord } from "./PaymentLedger.js";
import { PaymentTransitionError } from "./PaymentTransitionError.js";
import { paymentColumns, toPaymentRecord } from "./paymentRow.js";
import {
  canTransitionPayment,
  isPaymentStatus,
  type PaymentStatus,
  paymentStatuses,
  pendingPaymentStatuses,
} from "./paymentStatus.js";
import type { SqlExecutor } from "./SqlClient.js";
import { atomicParam, jsonParam, textParam, tokenCountParam } from "./sqlValues.js";

export type CreatePaymentLedgerParameters = {
  logger?: Logger | undefined;
};

type TransitionParameters = {
  /** Narrows the table for one method (resolveDebt leaves only `debt`). */
  onlyFrom?: readonly PaymentStatus[];
  /** Checks that need the current row, e.g. the charge against its maximum. */
  check?: (current: PaymentRecord) => void;
  /** Extra `SET` assignments, numbering parameters from $4. */
  set?: string;
  params?: readonly unknown[];
};

const pendingList = pendingPaymentStatuses.map((status) => `'${status}'`).join(", ");

/** A `PaymentLedger` over any `SqlClient` whose schema `applyMigrations` brought up to date. */
export function createPaymentLedger(
  sql: SqlExecutor,
  { logger = silentLogger }: CreatePaymentLedgerParameters = {},
): PaymentLedger {
  async function selectPayments(where: string, params: readonly unknown[]): Promise<PaymentRecord[]> {
    const rows = await sql.query(`SELECT ${paymentColumns} FROM payments ${where}`, params);
    return rows.map(toPaymentRecord);
  }

  async function get(id: number): Promise<PaymentRecord | undefined> {
    const [payment] = await selectPayments("WHERE id = $1", [id]);
    return payment;
  }

  async function getOrThrow(id: number): Promise<PaymentRecord> {
    const payment = await get(id);
    if (payment === undefined) {
      throw new TollgateError({
        code: "TOLLGATE_LEDGER_FAILED",
        shortMessage: `payment ${id} does not exist`,
        details: { paymentId: id },
      });
    }
    return payment;
  }

  /** The one place a payment changes status: checked against the table, applied only if nobody moved it first. */
  async function transition(
    id: number,
    to: PaymentStatus,
    how: TransitionParameters = {},
  ): Promise<PaymentRecord> {
    const current = await getOrThrow(id);
    const from = current.status;
    if (!canTransitionPayment(from, to) || (how.onlyFrom !== undefined && !how.onlyFrom.includes(from))) {
      throw new PaymentTransitionError({ paymentId: id, from, to, reason: "not_allowed" });
    }
    how.check?.(current);
    const rows = await sql.query(
      `UPDATE payments SET status = $3, updated_at = now()${how.set === undefined ? "" : `, ${how.set}`}
       WHERE id = $1 AND status = $2 RETURNING ${paymentColumns}`,
      [id, from, to, ...(how.params ?? [])],
    );
    const [row] = rows;
    if (row === undefined) {
      const moved = await getOrThrow(id);
      throw new PaymentTransitionError({ paymentId: id, from: moved.status, to, reason: "concurrent" });
    }
    logger.debug({ paymentId: id, from, to }, "ledger: payment moved");
    return toPaymentRecord(row);
  }

  function chargeWithinMax(chargeAtomic: bigint) {
    return (current: PaymentRecord) => {
      if (chargeAtomic > current.maxAtomic) {
        throw new TollgateError({
          code: "TOLLGATE_LEDGER_FAILED",
          shortMessage: `payment ${current.id}: charge exceeds the authorized maximum`,
          details: {
            paymentId: current.id,
            chargeAtomic: chargeAtomic.toString(),
            maxAtomic: current.maxAtomic.toString(),
          },
        });
      }
    };
  }

  return {
    async claim(input) {
      const key = normalizeAuthorizationKey(input);
      const inserted = await sql.query(
        `INSERT INTO payments (network, payer, nonce, scheme, model, route, asset, pay_to, max_atomic, payload, requirements)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10::jsonb, $11::jsonb)
         ON CONFLICT (network, payer, nonce) DO NOTHING
         RETURNING ${paymentColumns}`,
        [
          key.network,
          key.payer,
          key.nonce,
          textParam(input.scheme, "scheme"),
          textParam(input.model, "model"),
          textParam(input.route, "route"),
          textParam(input.asset, "asset"),
          textParam(input.payTo, "payTo"),
          atomicParam(input.maxAtomic, "maxAtomic"),
          jsonParam(input.paymentPayload, "paymentPayload"),
          jsonParam(input.paymentRequirements, "paymentRequirements"),
        ],
      );
      const [row] = inserted;
      if (row !== undefined) return { claimed: true, payment: toPaymentRecord(row) };
      // Lost the race (or a replay): a fresh statement sees the winner's committed row.
      const [existing] = await selectPayments("WHERE network = $1 AND payer = $2 AND nonce = $3", [
        key.network,
        key.payer,
        key.nonce,
      ]);
      if (existing === undefined) {
        throw new TollgateError({
          code: "TOLLGATE_LEDGER_FAILED",
          shortMessage: "claim conflicted with a payment that cannot be found",
          details: { ...key },
        });
      }
      logger.debug(
        { paymentId: existing.id, status: existing.status },
        "ledger: authorization already claimed",
      );
      return { claimed: false, existing };
    },

    get,

    async findByKey(keyInput) {
      const key = normalizeAuthorizationKey(keyInput);
      const [payment] = await selectPayments("WHERE network = $1 AND payer = $2 AND nonce = $3", [
        key.network,
        key.payer,
        key.nonce,
      ]);
      return payment;
    },

    markServing: async (id) => transition(id, "serving"),

    recordUsage: async (id, usage, chargeAtomic) =>
      transition(id, "metered", {
        check: chargeWithinMax(chargeAtomic),
        set: "prompt_tokens = $4, completion_tokens = $5, charge_atomic = $6::numeric",
        params: [
          tokenCountParam(usage.promptTokens, "promptTokens"),
          tokenCountParam(usage.completionTokens, "completionTokens"),
          atomicParam(chargeAtomic, "chargeAtomic"),
        ],
      }),

    markSettling: async (id) => transition(id, "settling"),

    async markSettled(id, { transaction, chargeAtomic }) {
      const charge = atomicParam(chargeAtomic, "chargeAtomic");
      // A zero charge sends no transaction (x402 upto); any other charge must name one.
      const hash = chargeAtomic === 0n ? null : textParam(transaction, "transaction");
      return transition(id, chargeAtomic === 0n ? "zero" : "settled", {
        check: chargeWithinMax(chargeAtomic),
        set: "charge_atomic = $4::numeric, transaction = $5, settled_at = now()",
        params: [charge, hash],
      });
    },

    async markDebt(id, reason) {
      const payment = await transition(id, "debt", {
        set: "error = $4",
        params: [textParam(reason, "reason")],
      });
      logger.warn(
        {
          paymentId: id,
          network: payment.network,
          payer: payment.payer,
          chargeAtomic: payment.chargeAtomic?.toString(),
          reason,
        },
        "ledger: settlement failed after delivery; payment recorded as debt",
      );
      return payment;
    },

    markFailed: async (id, reason) =>
      transition(id, "failed", { set: "error = $4", params: [textParam(reason, "reason")] }),

    async resolveDebt(id, transaction) {
      const payment = await transition(id, "settled", {
        onlyFrom: ["debt"],
        set: "transaction = $4, settled_at = now()",
        params: [textParam(transaction, "transaction")],
      });
      logger.info({ paymentId: id, payer: payment.payer, transaction }, "ledger: debt settled");
      return payment;
    },

    async openDebts(payer) {
      return payer === undefined
        ? selectPayments("WHERE status = 'debt' ORDER BY id", [])
        : selectPayments("WHERE status = 'debt' AND payer = $1 ORDER BY id", [normalizePayer(payer)]);
    },

    async hasOpenDebt(network, payer) {
      const [row] = await sql.query<{ open: unknown }>(
        "SELECT EXISTS (SELECT 1 FROM payments WHERE network = $1 AND payer = $2 AND status = 'debt') AS open",
        [network, normalizePayer(payer)],
      );
      return row?.open === true;
    },

    async touch(id) {
      const rows = await sql.query(
        "UPDATE payments SET updated_at = now() WHERE id = $1 AND status IN ('claimed', 'serving') RETURNING id",
        [id],
      );
      return rows.length > 0;
    },

    async listByStatus(status, { afterId = 0, limit = 500 } = {}) {
      if (!isPaymentStatus(status)) {
        throw new TollgateError({
          code: "TOLLGATE_LEDGER_FAILED",
          shortMessage: `unknown payment status ${String(status)}`,
          details: { status },
        });
      }
      const bounded = Number.isFinite(limit) ? Math.min(Math.max(Math.trunc(limit), 1), 5000) : 500;
      return selectPayments("WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3", [
        status,
        Math.max(Math.trunc(afterId), 0),
        bounded,
      ]);
    },

    async pendingForRecovery({ updatedBefore } = {}) {
      return updatedBefore === undefined
        ? selectPayments(`WHERE status IN (${pendingList}) ORDER BY id`, [])
        : selectPayments(`WHERE status IN (${pendingList}) AND updated_at < $1 ORDER BY id`, [
            updatedBefore.toISOString(),
          ]);
    },

    async recent({ limit = 50 } = {}) {
      const bounded = Number.isFinite(limit) ? Math.min(Math.max(Math.trunc(limit), 1), 1000) : 50;
      return selectPayments("ORDER BY id DESC LIMIT $1", [bounded]);
    },

    async totals() {
      const rows = await sql.query<{
        model: string;
        status: string;
        count: string;
        authorized: string;
        charged: string;
      }>(
        `SELECT model, status, count(*)::text AS count, sum(max_atomic)::text AS authorized,
                coalesce(sum(charge_atomic), 0)::text AS charged
         FROM payments GROUP BY model, status ORDER BY model, status`,
      );
      const byModel = new Map<string, PaymentModelTotals>();
      for (const row of rows) {
        if (!isPaymentStatus(row.status)) {
          logger.warn(
            { model: row.model, status: row.status },
            "ledger: totals skip an unknown payment status",
          );
          continue;
        }
        let totals = byModel.get(row.model);
        if (totals === undefined) {
          totals = {
            model: row.model,
            count: 0,
            authorizedAtomic: 0n,
            chargedAtomic: 0n,
            owedAtomic: 0n,
            byStatus: Object.fromEntries(paymentStatuses.map((status) => [status, 0])) as Record<
              PaymentStatus,
              number
            >,
          };
          byModel.set(row.model, totals);
        }
        const count = Number(row.count);
        totals.count += count;
        totals.byStatus[row.status] += count;
        totals.authorizedAtomic += BigInt(row.authorized);
        if (row.status === "settled") totals.chargedAtomic += BigInt(row.charged);
        if (row.status === "debt") totals.owedAtomic += BigInt(row.charged);
      }
      return [...byModel.values()];
    },
  };
}
