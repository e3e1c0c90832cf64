import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import { normalizeAuthorizationKey, normalizePayer } from "./normalizeAuthorizationKey.js";
import type {
  ClaimPaymentInput,
  ClaimPaymentResult,
  PaymentLedger,
  PaymentModelTotals,
  PaymentRecord,
} from "./PaymentLedger.js";
import { PaymentTransitionError } from "./PaymentTransitionError.js";
import { paymentColumns, toPaymentRecord } from "./paymentRow.js";
import { claimColumns, claimParams, claimValues, unitsOf } from "./paymentRowWrites.js";
import {
  canTransitionPayment,
  isPaymentStatus,
  type PaymentStatus,
  paymentStatuses,
  pendingPaymentStatuses,
} from "./paymentStatus.js";
import type { SqlClient, SqlExecutor, SqlRow } from "./SqlClient.js";
import { BLOCKING_DEBT, SHORT_CHANNEL, singleProcessBook } from "./singleProcessBook.js";
import { atomicParam, jsonParam, textParam, tokenCountParam } from "./sqlValues.js";

export type CreatePaymentLedgerParameters = {
  logger?: Logger | undefined;
};

type TransitionParameters = {
  /** Narrows the table for one method (resolveDebt leaves only `debt`). */
  onlyFrom?: readonly PaymentStatus[];
  /** A charge that must not exceed the row's authorized maximum (checked in the same statement). */
  chargeAtomic?: bigint;
  /** Extra `SET` assignments, numbering parameters from $3. */
  set?: string;
  params?: readonly unknown[];
  /** One more condition: the row's `column` still holds `value`. */
  where?: { column: string; value: unknown };
};

const pendingList = pendingPaymentStatuses.map((status) => `'${status}'`).join(", ");

/** Statuses of a payment whose charge is not final yet: its maximum is still reserved. */
const IN_FLIGHT = "'claimed', 'serving', 'metered', 'settling'";
/** The deadline (unix s) a row's authorization was signed with: Permit2's `deadline`, EIP-3009's `validBefore`. */
const DEADLINE = `COALESCE(payload->'payload'->'permit2Authorization'->>'deadline',
                           payload->'payload'->'authorization'->>'validBefore')`;
/**
 * A debt whose authorization may still be settled (its deadline has not passed): recovery settles it
 * again from the payer's funds, and the facilitator checks that they cover its whole maximum first, so
 * it stays reserved on them like a payment in flight. The deadline may be any uint256 (up to 78 digits):
 * one far beyond any date, which the gateway and the chain accept, never passes.
 */
const OWED_AND_SETTLEABLE = `status = 'debt' AND CASE WHEN ${DEADLINE} ~ '^[0-9]{1,78}$'
                     THEN ${DEADLINE}::numeric > extract(epoch FROM now()) ELSE FALSE END`;
/** The payer's ($1, $2) payments in flight and its settleable debts: what its funds are reserved for. */
const RESERVING = `FROM payments WHERE network = $1 AND payer = $2 AND status IN (${IN_FLIGHT}, 'debt')
                    AND (status IN (${IN_FLIGHT}) OR (${OWED_AND_SETTLEABLE}))`;
/** The maxima they reserve. */
const RESERVED = `(SELECT COALESCE(SUM(max_atomic), 0) ${RESERVING})`;
/**
 * What a payment's settlement needs its payer to hold, given its `scheme`, `requirements` (jsonb) and
 * maximum: for upto, the amount it was signed for (the facilitator settles an upto payment only once the
 * payer holds all of it), which may be more than the maximum it is charged; otherwise its maximum.
 */
const SIGNED = (scheme: string, requirements: string, maxAtomic: string) =>
  `GREATEST(${maxAtomic}, CASE WHEN ${scheme} = 'upto' AND ${requirements}->>'amount' ~ '^[0-9]{1,78}$'
                             THEN (${requirements}->>'amount')::numeric ELSE ${maxAtomic} END)`;
/**
 * The most any reserving payment's settlement needs above its maximum: settled last, after the others
 * took their maxima, it must still find all it was signed for.
 */
const MARGIN = `(SELECT COALESCE(MAX(${SIGNED("scheme", "requirements", "max_atomic")} - max_atomic), 0) ${RESERVING})`;
/** What a claim (`scheme`, `requirements`, `maxAtomic`) needs of the funds beside the reservations' maxima. */
const CLAIM_NEEDS = (scheme: string, requirements: string, maxAtomic: string) =>
  `${maxAtomic} + GREATEST(${MARGIN}, ${SIGNED(scheme, requirements, maxAtomic)} - ${maxAtomic})`;
/** The charges of the payer's ($1, $2) payments settled since `sinceMs` (a parameter, ms since the epoch). */
const SETTLED_SINCE = (sinceMs: string) => `(SELECT COALESCE(SUM(charge_atomic), 0) FROM payments
                  WHERE network = $1 AND payer = $2 AND status = 'settled'
                    AND settled_at >= to_timestamp(${sinceMs}::float8 / 1000))`;
/**
 * Whether a payment payload carries an EIP-2612 permit (`eip2612GasSponsoring`). Such a payment is in
 * flight alone among its payer's: its permit sets the payer's Permit2 allowance to its own amount, and of
 * permits signed on one token nonce only the first settled takes effect, so no other payment of the payer
 * can count on the allowance until it is settled.
 */
const CARRIES_PERMIT = (payload: string) =>
  // A signed permit, not the 402's declaration of the extension that clients echo in every payload.
  `(${payload}->'extensions'->'eip2612GasSponsoring'->'info'->>'signature') IS NOT NULL`;
/**
 * Whether a payment of the payer ($1, $2) carrying an EIP-2612 permit settled since `sinceMs` (a
 * parameter, ms since the epoch): its permit set the payer's Permit2 allowance to its own amount, less its
 * charge, whatever an allowance read before showed.
 */
const PERMIT_SETTLED_SINCE = (sinceMs: string) => `EXISTS (SELECT 1 FROM payments
                  WHERE network = $1 AND payer = $2 AND status = 'settled'
                    AND settled_at >= to_timestamp(${sinceMs}::float8 / 1000) AND ${CARRIES_PERMIT("payload")})`;

/**
 * Whether payer $2 on network $1 owes: a charge whose settlement failed (a debt), or a channel whose
 * escrow holds less than was charged on it (its payer withdrew before the charges were claimed; a claim
 * confirmed it).
 */
const OWES = `(EXISTS (SELECT 1 FROM payments WHERE network = $1 AND payer = $2 AND ${BLOCKING_DEBT})
   OR EXISTS (SELECT 1 FROM channels WHERE network = $1 AND payer = $2 AND ${SHORT_CHANNEL}))`;

/** Ids among which `recent` looks for the newest rows written. */
const RECENT_ID_WINDOW = 10_000;

/** A `PaymentLedger` over any `SqlClient` whose schema `applyMigrations` brought up to date. */

export function createPaymentLedger(
  sql: SqlClient,
  { logger = silentLogger }: CreatePaymentLedgerParameters = {},
): PaymentLedger {
  const alone = sql.serializesStatements ? singleProcessBook(sql) : undefined;
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

  /**
   * The one place a payment changes status: a single conditional `UPDATE` that moves the row only from a
   * status the table allows (and, with a charge, only when it is within the row's maximum), so two workers
   * can never both move one row. The row is read again only when nothing moved, to say why.
   */
  async function transition(
    id: number,
    to: PaymentStatus,
    how: TransitionParameters = {},
  ): Promise<PaymentRecord> {
    const from = paymentStatuses.filter(
      (status) => canTransitionPayment(status, to) && (how.onlyFrom?.includes(status) ?? true),
    );
    const params: unknown[] = [id, to, ...(how.params ?? [])];
    let guards = "";
    if (how.chargeAtomic !== undefined) {
      params.push(atomicParam(how.chargeAtomic, "chargeAtomic"));
      guards = ` AND max_atomic >= $${params.length}::numeric`;
    }
    if (how.where !== undefined) {
      params.push(how.where.value);
      guards += ` AND ${how.where.column} = $${params.length}`;
    }
    const rows =
      from.length === 0
        ? []
        : await sql.query(
            `UPDATE payments SET status = $2, updated_at = now()${how.set === undefined ? "" : `, ${how.set}`}
             WHERE id = $1 AND status IN (${from.map((status) => `'${status}'`).join(", ")})${guards}
             RETURNING ${paymentColumns}`,
            params,
          );
    const [row] = rows;
    if (row !== undefined) {
      logger.debug({ paymentId: id, to }, "ledger: payment moved");
      return toPaymentRecord(row);
    }
    const current = await getOrThrow(id);
    if (!from.includes(current.status)) {
      throw new PaymentTransitionError({ paymentId: id, from: current.status, to, reason: "not_allowed" });
    }
    if (how.chargeAtomic !== undefined && how.chargeAtomic > current.maxAtomic) {
      throw new TollgateError({
        code: "TOLLGATE_LEDGER_FAILED",
        shortMessage: `payment ${id}: charge exceeds the authorized maximum`,
        details: {
          paymentId: id,
          chargeAtomic: how.chargeAtomic.toString(),
          maxAtomic: current.maxAtomic.toString(),
        },
      });
    }
    // It stood elsewhere when the UPDATE ran and has moved since: another worker is at it.
    throw new PaymentTransitionError({ paymentId: id, from: current.status, to, reason: "concurrent" });
  }

  /**
   * Inserts the claim unless the authorization is already held; with `fundsAtomic`, also unless the
   * maxima of the payer's payments in flight plus this one exceed it (checked in the same statement).
   */
  async function insertClaim(
    db: SqlExecutor,
    input: ClaimPaymentInput,
    serving: boolean,
    {
      fundsAtomic,
      id,
      settledSinceMs,
      allowanceRead = false,
    }: {
      fundsAtomic?: bigint;
      id?: number | undefined;
      settledSinceMs?: number | undefined;
      allowanceRead?: boolean | undefined;
    } = {},
  ): Promise<SqlRow[]> {
    const params = claimParams(input);
    const conditions: string[] = [];
    if (fundsAtomic !== undefined) {
      params.push(atomicParam(fundsAtomic, "fundsAtomic"));
      const fundsParam = params.length;
      // A payment that settled after the funds were read moved money the read does not show.
      let settledSince = "";
      if (settledSinceMs !== undefined) {
        params.push(settledSinceMs);
        settledSince = ` + ${SETTLED_SINCE(`$${params.length}`)}`;
        // An allowance read before a permit settled is not the allowance any more.
        if (allowanceRead) conditions.push(`NOT ${PERMIT_SETTLED_SINCE(`$${params.length}`)}`);
      }
      conditions.push(
        `${RESERVED}${settledSince} + ${CLAIM_NEEDS("$4::text", "$11::jsonb", "$9::numeric")} <= $${fundsParam}::numeric`,
      );
      conditions.push(`NOT EXISTS (SELECT 1 FROM payments
                  WHERE network = $1 AND payer = $2 AND status IN (${IN_FLIGHT})
                    AND (${CARRIES_PERMIT("payload")} OR ${CARRIES_PERMIT("$10::jsonb")}))`);
    }
    // An id allocated before (allocateUnlessInDebt) is written as given.
    const idColumn = id === undefined ? "" : "id, ";
    if (id !== undefined) {
      if (!Number.isSafeInteger(id) || id < 1)
        throw new Error(`payment id must be a positive integer, got ${id}`);
      params.push(id);
    }
    return db.query(
      `INSERT INTO payments (${idColumn}${claimColumns}, status)
       ${id === undefined ? "" : "OVERRIDING SYSTEM VALUE"}
       SELECT ${id === undefined ? "" : `$${params.length}, `}${claimValues}, '${serving ? "serving" : "claimed"}'
       ${conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : ""}
       ON CONFLICT (network, payer, nonce) DO NOTHING
       RETURNING ${paymentColumns}`,
      params,
    );
  }

  /** The claim's answer from its INSERT: the new row, or the row that already holds the authorization. */
  async function claimed(input: ClaimPaymentInput, inserted: SqlRow[]): Promise<ClaimPaymentResult> {
    const key = normalizeAuthorizationKey(input);
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
  }

  return {
    async claim(input, { serving = false, id } = {}) {
      return claimed(input, await insertClaim(sql, input, serving, { id }));
    },

    async allocateUnlessInDebt(keyInput) {
      const key = normalizeAuthorizationKey({ ...keyInput, nonce: 0n });
      if (alone) return (await alone.owes(key.network, key.payer)) ? undefined : alone.takeId();
      const [row] = await sql.query<{ id: unknown }>(
        `SELECT CASE WHEN ${OWES} THEN NULL ELSE nextval(pg_get_serial_sequence('payments', 'id')) END AS id`,
        [key.network, key.payer],
      );
      return row?.id === null || row?.id === undefined ? undefined : Number(row.id);
    },

    async claimWithinFunds(input, fundsAtomic, { serving = false, settledSinceMs, allowanceRead } = {}) {
      const key = normalizeAuthorizationKey(input);
      // One statement checks and inserts; with several connections (PostgreSQL, replicas), one payer
      // at a time under an advisory lock, so the sum sees every claim committed before it.
      const inserted = sql.serializesStatements
        ? await insertClaim(sql, input, serving, { fundsAtomic, settledSinceMs, allowanceRead })
        : await sql.transaction(async (tx) => {
            await tx.query("SELECT pg_advisory_xact_lock(hashtext('tollgate:' || $1 || ':' || $2))", [
              key.network,
              key.payer,
            ]);
            return insertClaim(tx, input, serving, { fundsAtomic, settledSinceMs, allowanceRead });
          });
      if (inserted.length > 0) return claimed(input, inserted);
      const [existing] = await selectPayments("WHERE network = $1 AND payer = $2 AND nonce = $3", [
        key.network,
        key.payer,
        key.nonce,
      ]);
      if (existing) return { claimed: false, existing };
      // Its own margin above its maximum is told as reserved too: what it may cost is its maximum.
      const [sum] = await sql.query<{ reserved: unknown; settled: unknown; checked_at_ms: unknown }>(
        `SELECT (${RESERVED} + ${CLAIM_NEEDS("$3::text", "$4::jsonb", "$5::numeric")} - $5::numeric)::text AS reserved,
                ${settledSinceMs === undefined ? "'0'" : `${SETTLED_SINCE("$6")}::text`} AS settled,
                (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS checked_at_ms`,
        [
          key.network,
          key.payer,
          textParam(input.scheme, "scheme"),
          jsonParam(input.paymentRequirements, "paymentRequirements"),
          atomicParam(input.maxAtomic, "maxAtomic"),
          ...(settledSinceMs === undefined ? [] : [settledSinceMs]),
        ],
      );
      const settledSinceAtomic = BigInt(String(sum?.settled ?? "0"));
      const [permits] = await sql.query<{ held: unknown }>(
        `SELECT (COUNT(*) > 0 AND (bool_or(${CARRIES_PERMIT("payload")}) OR ${CARRIES_PERMIT("$3::jsonb")}))::text AS held
         FROM payments WHERE network = $1 AND payer = $2 AND status IN (${IN_FLIGHT})`,
        [key.network, key.payer, jsonParam(input.paymentPayload, "paymentPayload")],
      );
      const reservedAtomic = BigInt(String(sum?.reserved ?? "0")) + settledSinceAtomic;
      logger.debug({ ...key, reserved: reservedAtomic.toString() }, "ledger: payer's funds are reserved");
      return {
        claimed: false,
        existing: undefined,
        reservedAtomic,
        fundsAtomic,
        permitInFlight: String(permits?.held) === "true",
        settledSinceAtomic,
        checkedAtMs: Number(sum?.checked_at_ms),
      };
    },

    get,

    async admission(keyInput) {
      const key = normalizeAuthorizationKey(keyInput);
      const [row] = await sql.query<{ in_debt: unknown; id: unknown; status: unknown }>(
        `SELECT ${OWES} AS in_debt,
                seen.id, seen.status
         FROM (SELECT 1) AS one
         LEFT JOIN payments AS seen ON seen.network = $1 AND seen.payer = $2 AND seen.nonce = $3`,
        [key.network, key.payer, key.nonce],
      );
      if (row === undefined) {
        throw new TollgateError({
          code: "TOLLGATE_LEDGER_FAILED",
          shortMessage: "admission query returned no row",
        });
      }
      if (row.id === null || row.id === undefined)
        return { inDebt: row.in_debt === true, existing: undefined };
      if (!isPaymentStatus(row.status)) {
        throw new TollgateError({
          code: "TOLLGATE_LEDGER_FAILED",
          shortMessage: `payment ${String(row.id)} has an unknown status ${String(row.status)}`,
          details: { status: row.status },
        });
      }
      return { inDebt: row.in_debt === true, existing: { id: Number(row.id), status: row.status } };
    },

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
        chargeAtomic,
        set: "prompt_tokens = $3, completion_tokens = $4, charge_atomic = $5::numeric, usage = $6::jsonb",
        params: [
          tokenCountParam(usage.promptTokens, "promptTokens"),
          tokenCountParam(usage.completionTokens, "completionTokens"),
          atomicParam(chargeAtomic, "chargeAtomic"),
          jsonParam(unitsOf(usage), "usage"),
        ],
      }),

    markSettling: async (id) => transition(id, "settling"),

    async markSettled(id, { transaction, chargeAtomic }) {
      const charge = atomicParam(chargeAtomic, "chargeAtomic");
      // A zero charge sends no transaction (x402 upto); any other charge must name one.
      const hash = chargeAtomic === 0n ? null : textParam(transaction, "transaction");
      const payment = await transition(id, chargeAtomic === 0n ? "zero" : "settled", {
        chargeAtomic,
        set: "charge_atomic = $3::numeric, transaction = $4, settled_at = now()",
        params: [charge, hash],
      });
      // A debt may be settled this way too (recovery finds its transfer on chain): counted again then.
      if (alone?.counts(payment.network, payment.payer)) await alone.recount(payment.network, payment.payer);
      return payment;
    },

    async markDebt(id, reason, { blocksPayer = true } = {}) {
      const payment = await transition(id, "debt", {
        onlyFrom: ["settling"],
        set: "error = $3, debt_blocks_payer = $4",
        params: [textParam(reason, "reason"), blocksPayer],
      });
      await alone?.recount(payment.network, payment.payer);
      logger.warn(
        {
          paymentId: id,
          network: payment.network,
          payer: payment.payer,
          chargeAtomic: payment.chargeAtomic?.toString(),
          reason,
          blocksPayer,
        },
        "ledger: settlement failed after delivery; payment recorded as debt",
      );
      return payment;
    },

    async markTakenBack(id, { transaction, reason }) {
      // Only the settlement found gone: a row settled again meanwhile (another transaction) stays settled.
      const payment = await transition(id, "debt", {
        onlyFrom: ["settled"],
        set: "error = $3, debt_blocks_payer = FALSE, transaction = NULL, settled_at = NULL",
        params: [textParam(reason, "reason")],
        where: { column: "transaction", value: textParam(transaction, "transaction") },
      });
      await alone?.recount(payment.network, payment.payer);
      logger.error(
        {
          paymentId: id,
          network: payment.network,
          payer: payment.payer,
          chargeAtomic: payment.chargeAtomic?.toString(),
          transaction,
          reason,
        },
        "ledger: the chain no longer holds this payment's settlement; recorded as debt",
      );
      return payment;
    },

    markFailed: async (id, reason) =>
      transition(id, "failed", { set: "error = $3", params: [textParam(reason, "reason")] }),

    async resolveDebt(id, transaction) {
      const payment = await transition(id, "settled", {
        onlyFrom: ["debt"],
        set: "transaction = $3, settled_at = now()",
        params: [textParam(transaction, "transaction")],
      });
      await alone?.recount(payment.network, payment.payer);
      logger.info({ paymentId: id, payer: payment.payer, transaction }, "ledger: debt settled");
      return payment;
    },

    async openDebts(payer) {
      return payer === undefined
        ? selectPayments("WHERE status = 'debt' ORDER BY id", [])
        : selectPayments("WHERE status = 'debt' AND payer = $1 ORDER BY id", [normalizePayer(payer)]);
    },

    async hasOpenDebt(network, payer) {
      const [row] = await sql.query<{ open: unknown }>(`SELECT ${OWES} AS open`, [
        network,
        normalizePayer(payer),
      ]);
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

    async settledSince({ after, untouchedForMs, withinSeconds, limit = 500 }) {
      const bounded = Number.isFinite(limit) ? Math.min(Math.max(Math.trunc(limit), 1), 5000) : 500;
      const params: unknown[] = [
        Math.max(0, Math.trunc(untouchedForMs)),
        Math.max(0, Math.trunc(withinSeconds)),
        bounded,
      ];
      // Pages by (settled_at to the millisecond, id): what a JavaScript Date keeps of the last row.
      let page = "";
      if (after !== undefined) {
        params.push(after.settledAt.toISOString(), Math.trunc(after.id));
        page = " AND (date_trunc('milliseconds', settled_at), id) > ($4::timestamptz, $5::bigint)";
      }
      return selectPayments(
        `WHERE status = 'settled' AND settled_at < now() - $1::float8 * interval '1 millisecond'
           AND settled_at > now() - $2::float8 * interval '1 second'${page}
         ORDER BY date_trunc('milliseconds', settled_at), id LIMIT $3`,
        params,
      );
    },

    async pendingForRecovery({ updatedBefore, untouchedForMs } = {}) {
      const conditions = [`status IN (${pendingList})`];
      const params: unknown[] = [];
      if (updatedBefore !== undefined) {
        params.push(updatedBefore.toISOString());
        conditions.push(`updated_at < $${params.length}`);
      }
      if (untouchedForMs !== undefined) {
        params.push(Math.max(0, Math.trunc(untouchedForMs)));
        conditions.push(`updated_at < now() - $${params.length}::float8 * interval '1 millisecond'`);
      }
      return selectPayments(`WHERE ${conditions.join(" AND ")} ORDER BY id`, params);
    },

    async recent({ limit = 50 } = {}) {
      const bounded = Number.isFinite(limit) ? Math.min(Math.max(Math.trunc(limit), 1), 1000) : 50;
      // By when each row was written: an id allocated ahead (allocateUnlessInDebt) may be written after
      // later ones. Only the newest ids are sorted (through the primary key), not the whole table, which
      // the dashboard reads every few seconds: a row written more than RECENT_ID_WINDOW ids late is missed.
      return selectPayments(
        "WHERE id > (SELECT COALESCE(MAX(id), 0) FROM payments) - $2 ORDER BY created_at DESC, id DESC LIMIT $1",
        [bounded, RECENT_ID_WINDOW],
      );
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
