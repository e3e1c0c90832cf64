import { randomUUID } from "node:crypto";
import { applyMigrations, type SqlClient, type SqlRow } from "../ledger/index.js";
import { buyerChannelQueries } from "./buyerChannelQueries.js";
import { money } from "./policyRefusal.js";
import { providerLatencyQueries } from "./providerLatencyQueries.js";
import type {
  DaySpend,
  RecordDisputeInput,
  ReservationStatus,
  ReserveSpendInput,
  ReserveSpendResult,
  SpendDispute,
  SpendReservation,
  SpendStore,
  StoredReceipts,
} from "./SpendStore.js";
import { spendMigrations } from "./spendMigrations.js";

export type CreateSpendStoreParameters = {
  sql: SqlClient;
  /** The clock; days are UTC days of this. Default `() => new Date()`. */
  now?: () => Date;
  /** Called by `close()` after the database is closed (e.g. to drop a directory lock). */
  onClose?: () => Promise<void> | void;
};

/** Serialises reservations across connections (PostgreSQL) so caps hold under concurrency. */
const RESERVE_LOCK_KEY = "7454100202140000001";

/** The UTC day of `date`, `YYYY-MM-DD`. */
export function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/**
 * The spend store on any `SqlClient` (PGlite or PostgreSQL): applies its migrations, then
 * reserves, reconciles and reports spend.
 * @example
 * const store = await createSpendStore({ sql: await createPgliteClient({ dataDir }) });
 */
export async function createSpendStore({
  sql,
  now = () => new Date(),
  onClose,
}: CreateSpendStoreParameters): Promise<SpendStore> {
  await applyMigrations(sql, { migrations: spendMigrations });

  async function transition(
    id: string,
    status: ReservationStatus,
    set: { countedAtomic?: bigint; chargedAtomic?: bigint; transaction?: string | undefined; note?: string },
  ): Promise<void> {
    // No more than the signed maximum can move on chain: a charge stated above it counts as the maximum.
    await sql.query(
      `UPDATE spend_reservations
          SET status = $2,
              counted_atomic = LEAST(COALESCE($3::numeric, counted_atomic), max_atomic),
              charged_atomic = COALESCE($4::numeric, charged_atomic),
              transaction = COALESCE($5, transaction),
              note = COALESCE($6, note),
              updated_at = now()
        WHERE id = $1 AND status = 'reserved'`,
      [
        id,
        status,
        set.countedAtomic?.toString() ?? null,
        set.chargedAtomic?.toString() ?? null,
        set.transaction || null,
        set.note ?? null,
      ],
    );
  }

  return {
    ...buyerChannelQueries(sql),
    ...providerLatencyQueries(sql),
    async reserve(input: ReserveSpendInput): Promise<ReserveSpendResult> {
      const day = utcDay(now());
      return sql.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(${RESERVE_LOCK_KEY})`);
        const [totals] = await tx.query<{ total: string; provider: string }>(
          `SELECT COALESCE(SUM(counted_atomic), 0)::text AS total,
                  COALESCE(SUM(counted_atomic) FILTER (WHERE origin = $2), 0)::text AS provider
             FROM spend_reservations WHERE day = $1`,
          [day, input.origin],
        );
        const spent = { daily: BigInt(totals?.total ?? "0"), provider: BigInt(totals?.provider ?? "0") };
        const caps = [
          { rule: "daily" as const, limitAtomic: input.dailyAtomic, spentAtomic: spent.daily },
          {
            rule: "providers.daily" as const,
            limitAtomic: input.providerDailyAtomic,
            spentAtomic: spent.provider,
          },
        ];
        for (const { rule, limitAtomic, spentAtomic } of caps) {
          if (limitAtomic !== undefined && spentAtomic + input.maxAtomic > limitAtomic) {
            return {
              ok: false,
              refusal: {
                rule,
                message: `maximum ${money(input.maxAtomic)} would pass the ${rule} cap of ${money(limitAtomic)} (${money(spentAtomic)} already spent or reserved today, UTC)`,
                limitAtomic,
                askedAtomic: input.maxAtomic,
                spentAtomic,
                origin: input.origin,
                day,
              },
            };
          }
        }
        const id = randomUUID();
        await tx.query(
          `INSERT INTO spend_reservations
             (id, day, origin, url, payer, scheme, network, asset, pay_to, model,
              max_atomic, expected_atomic, counted_atomic)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11)`,
          [
            id,
            day,
            input.origin,
            input.url,
            input.payer.toLowerCase(),
            input.scheme,
            input.network,
            input.asset,
            input.payTo,
            input.model ?? null,
            input.maxAtomic.toString(),
            input.expectedAtomic?.toString() ?? null,
          ],
        );
        return { ok: true, id, day };
      });
    },

    async authorize(id, { nonce, deadline, channelId, depositAtomic, channelBaseAtomic }) {
      await sql.query(
        `UPDATE spend_reservations
            SET nonce = $2, deadline = $3, channel_id = $4, deposit_atomic = $5, channel_base_atomic = $6,
                updated_at = now()
          WHERE id = $1`,
        [
          id,
          nonce ?? null,
          deadline?.toISOString() ?? null,
          channelId?.toLowerCase() ?? null,
          depositAtomic?.toString() ?? null,
          channelBaseAtomic?.toString() ?? null,
        ],
      );
    },

    async channelVouchers(channelId) {
      const rows = await sql.query(
        `SELECT id, status, max_atomic, charged_atomic, channel_base_atomic AS base FROM spend_reservations
          WHERE channel_id = $1 AND channel_base_atomic IS NOT NULL
          ORDER BY created_at, id`,
        [channelId.toLowerCase()],
      );
      return rows.map((row) => ({
        id: String(row.id),
        status: row.status as SpendReservation["status"],
        baseAtomic: BigInt(String(row.base)),
        maxAtomic: BigInt(String(row.max_atomic)),
        chargedAtomic:
          row.charged_atomic === null || row.charged_atomic === undefined
            ? undefined
            : BigInt(String(row.charged_atomic)),
      }));
    },

    reconcileChannelVouchers: (channelId, chargedCumulativeAtomic, { except } = {}) =>
      sql.transaction(async (tx) => {
        const rows = await tx.query<{ id: string; origin: string; max_atomic: unknown; base: unknown }>(
          `SELECT id, origin, max_atomic, channel_base_atomic AS base FROM spend_reservations
            WHERE channel_id = $1 AND status = 'reserved' AND channel_base_atomic IS NOT NULL
              AND ($2::text IS NULL OR id <> $2)
            ORDER BY channel_base_atomic, created_at
            FOR UPDATE`,
          [channelId.toLowerCase(), except ?? null],
        );
        const open = rows.map((row) => ({
          id: String(row.id),
          origin: String(row.origin),
          maxAtomic: BigInt(String(row.max_atomic)),
          baseAtomic: BigInt(String(row.base)),
        }));
        // Vouchers on one channel are served one at a time, each on the cumulative its predecessor
        // left (equal bases: the earlier was charged nothing). A cumulative below a base does not
        // add up: nothing is guessed, and each stays counted at its maximum.
        const bounds = [...open.map((voucher) => voucher.baseAtomic), chargedCumulativeAtomic];
        for (let i = 1; i < bounds.length; i += 1) {
          if ((bounds[i] as bigint) < (bounds[i - 1] as bigint)) return [];
        }
        const reconciled = open.map((voucher, i) => ({
          id: voucher.id,
          origin: voucher.origin,
          maxAtomic: voucher.maxAtomic,
          chargedAtomic: (bounds[i + 1] as bigint) - voucher.baseAtomic,
        }));
        // Nor does a charge above the voucher's own maximum: the seller could not have charged it.
        if (reconciled.some((voucher) => voucher.chargedAtomic > voucher.maxAtomic)) return [];
        for (const voucher of reconciled) {
          await tx.query(
            `UPDATE spend_reservations
                SET status = 'settled', counted_atomic = $2::numeric, charged_atomic = $2::numeric,
                    note = $3, updated_at = now()
              WHERE id = $1 AND status = 'reserved'`,
            [
              voucher.id,
              voucher.chargedAtomic.toString(),
              `no receipt; charge read from the seller's channel state (cumulative ${chargedCumulativeAtomic})`,
            ],
          );
        }
        return reconciled;
      }),

    async leaseChannelSlot(poolKey, slot, holder, ttlMs) {
      const rows = await sql.query(
        `INSERT INTO buyer_channel_leases (pool_key, slot, holder, expires_at)
         VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
         ON CONFLICT (pool_key, slot) DO UPDATE
           SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
           WHERE buyer_channel_leases.expires_at < now() OR buyer_channel_leases.holder = EXCLUDED.holder
         RETURNING holder`,
        [poolKey, slot, holder, ttlMs],
      );
      return rows.length === 1;
    },

    async renewChannelSlot(poolKey, slot, holder, ttlMs) {
      const rows = await sql.query(
        `UPDATE buyer_channel_leases SET expires_at = now() + $4 * interval '1 millisecond'
          WHERE pool_key = $1 AND slot = $2 AND holder = $3 RETURNING holder`,
        [poolKey, slot, holder, ttlMs],
      );
      return rows.length === 1;
    },

    async releaseChannelSlot(poolKey, slot, holder) {
      await sql.query(
        "DELETE FROM buyer_planned_openings WHERE pool_key = $1 AND slot = $2 AND holder = $3",
        [poolKey, slot, holder],
      );
      await sql.query("DELETE FROM buyer_channel_leases WHERE pool_key = $1 AND slot = $2 AND holder = $3", [
        poolKey,
        slot,
        holder,
      ]);
    },

    async planOpening({ poolKey, slot, holder }, opening) {
      if (opening === undefined) {
        await sql.query(
          "DELETE FROM buyer_planned_openings WHERE pool_key = $1 AND slot = $2 AND holder = $3",
          [poolKey, slot, holder],
        );
        return;
      }
      await sql.query(
        `INSERT INTO buyer_planned_openings (pool_key, slot, holder, payer, origin, channel_id, amount_atomic)
         VALUES ($1, $2, $3, $4, $5, $6, $7::numeric)
         ON CONFLICT (pool_key, slot, holder) DO UPDATE
           SET payer = EXCLUDED.payer, origin = EXCLUDED.origin, channel_id = EXCLUDED.channel_id,
               amount_atomic = EXCLUDED.amount_atomic`,
        [
          poolKey,
          slot,
          holder,
          opening.payer.toLowerCase(),
          opening.origin,
          opening.channelId.toLowerCase(),
          opening.amountAtomic.toString(),
        ],
      );
    },

    async plannedOpenings({ payer, origin, exceptHolder }) {
      // A planned opening counts while the lease it was planned under is held: a process that
      // crashed stops counting once its lease lapses.
      const rows = await sql.query<{ origin: string; channel_id: string; amount_atomic: string }>(
        `SELECT o.origin, o.channel_id, o.amount_atomic::text AS amount_atomic
           FROM buyer_planned_openings o
           JOIN buyer_channel_leases l ON l.pool_key = o.pool_key AND l.slot = o.slot AND l.holder = o.holder
          WHERE o.payer = $1 AND o.holder <> $2 AND l.expires_at > now()
            AND ($3::text IS NULL OR o.origin = $3::text)`,
        [payer.toLowerCase(), exceptHolder, origin ?? null],
      );
      return rows.map((row) => ({
        origin: row.origin,
        channelId: row.channel_id,
        amountAtomic: BigInt(row.amount_atomic),
      }));
    },

    settle: (id, { chargedAtomic, transaction }) =>
      transition(id, "settled", { countedAtomic: chargedAtomic, chargedAtomic, transaction }),
    async correctCharge(id, { chargedAtomic, note }) {
      await sql.query(
        `UPDATE spend_reservations
            SET counted_atomic = LEAST($2::numeric, max_atomic), charged_atomic = $2::numeric,
                note = $3, updated_at = now()
          WHERE id = $1 AND status = 'settled'`,
        [id, chargedAtomic.toString(), note],
      );
    },
    async reopen(id, note) {
      await sql.query(
        `UPDATE spend_reservations
            SET status = 'reserved', counted_atomic = max_atomic, charged_atomic = NULL,
                note = $2, updated_at = now()
          WHERE id = $1 AND status = 'settled'`,
        [id, note],
      );
    },
    async recordReceipts(id, receipts) {
      const { status, signer, ...stored } = receipts;
      await sql.query(
        `UPDATE spend_reservations
            SET receipt_status = $2, receipt_signer = $3, signed_receipts = $4, updated_at = now()
          WHERE id = $1`,
        [id, status, signer ?? null, JSON.stringify(stored)],
      );
    },
    release: (id, note) => transition(id, "released", { countedAtomic: 0n, note }),
    expire: (id, note) => transition(id, "expired", { countedAtomic: 0n, note }),

    async note(id, note) {
      await sql.query("UPDATE spend_reservations SET note = $2, updated_at = now() WHERE id = $1", [
        id,
        note,
      ]);
    },

    async lapsed(before) {
      const rows = await sql.query(
        `SELECT *, day::text AS day_text FROM spend_reservations
          WHERE status = 'reserved' AND deadline IS NOT NULL AND deadline < $1 ORDER BY created_at`,
        [before.toISOString()],
      );
      return rows.map(reservationOf);
    },

    async recent({ limit = 20 } = {}) {
      const bounded = Number.isFinite(limit) ? Math.min(Math.max(Math.trunc(limit), 1), 500) : 20;
      const rows = await sql.query(
        "SELECT *, day::text AS day_text FROM spend_reservations ORDER BY created_at DESC LIMIT $1",
        [bounded],
      );
      return rows.map(reservationOf);
    },

    async reservation(id) {
      const [row] = await sql.query("SELECT *, day::text AS day_text FROM spend_reservations WHERE id = $1", [
        id,
      ]);
      return row === undefined ? undefined : reservationOf(row);
    },

    async daySpend(day = utcDay(now())): Promise<DaySpend> {
      const rows = await sql.query<{
        origin: string;
        network: string;
        asset: string;
        counted: string;
        charged: string;
        reserved: string;
        payments: unknown;
      }>(
        `SELECT origin, network, asset,
                SUM(counted_atomic)::text AS counted,
                COALESCE(SUM(charged_atomic) FILTER (WHERE status = 'settled'), 0)::text AS charged,
                COALESCE(SUM(counted_atomic) FILTER (WHERE status = 'reserved'), 0)::text AS reserved,
                COUNT(*) FILTER (WHERE status IN ('reserved', 'settled')) AS payments
           FROM spend_reservations WHERE day = $1
          GROUP BY origin, network, asset ORDER BY network, asset, origin`,
        [day],
      );
      const providers = rows.map((row) => ({
        origin: row.origin,
        network: row.network,
        asset: row.asset,
        countedAtomic: BigInt(row.counted),
        chargedAtomic: BigInt(row.charged),
        reservedAtomic: BigInt(row.reserved),
        payments: Number(row.payments),
      }));
      return {
        day,
        countedAtomic: providers.reduce((sum, provider) => sum + provider.countedAtomic, 0n),
        providers,
      };
    },

    async recordDispute(input: RecordDisputeInput) {
      const [row] = await sql.query<{ id: unknown }>(
        `INSERT INTO disputes
           (reservation_id, origin, reason, charged_atomic, justified_atomic, max_atomic, transaction, network, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
        [
          input.reservationId,
          input.origin,
          input.reason,
          input.chargedAtomic.toString(),
          input.justifiedAtomic?.toString() ?? null,
          input.maxAtomic.toString(),
          input.transaction || null,
          input.network ?? null,
          JSON.stringify(input.details ?? {}, (_key, value) =>
            typeof value === "bigint" ? value.toString() : value,
          ),
        ],
      );
      return Number(row?.id);
    },

    async disputes({ status } = {}) {
      const rows = await sql.query(
        `SELECT * FROM disputes ${status ? "WHERE status = $1" : ""} ORDER BY id`,
        status ? [status] : [],
      );
      return rows.map(disputeOf);
    },

    async resolveDispute(id) {
      await sql.query(
        "UPDATE disputes SET status = 'resolved', resolved_at = now() WHERE id = $1 AND status = 'open'",
        [id],
      );
    },

    async close() {
      await sql.close();
      await onClose?.();
    },
  };
}

function optionalBigint(value: unknown): bigint | undefined {
  return value === null || value === undefined ? undefined : BigInt(String(value));
}

function optionalText(value: unknown): string | undefined {
  return value === null || value === undefined ? undefined : String(value);
}

function dateOf(value: unknown): Date {
  return value instanceof Date ? value : new Date(String(value));
}

function reservationOf(row: SqlRow): SpendReservation {
  return {
    id: String(row.id),
    day: String(row.day_text),
    origin: String(row.origin),
    url: String(row.url),
    payer: String(row.payer),
    scheme: String(row.scheme),
    network: String(row.network),
    asset: String(row.asset),
    payTo: String(row.pay_to),
    model: optionalText(row.model),
    maxAtomic: BigInt(String(row.max_atomic)),
    expectedAtomic: optionalBigint(row.expected_atomic),
    chargedAtomic: optionalBigint(row.charged_atomic),
    countedAtomic: BigInt(String(row.counted_atomic)),
    status: String(row.status) as ReservationStatus,
    nonce: optionalText(row.nonce),
    deadline: row.deadline === null || row.deadline === undefined ? undefined : dateOf(row.deadline),
    transaction: optionalText(row.transaction),
    note: optionalText(row.note),
    signedReceipts: storedReceiptsOf(row),
    createdAt: dateOf(row.created_at),
  };
}

function storedReceiptsOf(row: SqlRow): StoredReceipts | undefined {
  if (row.receipt_status === null || row.receipt_status === undefined) return undefined;
  const stored = (
    typeof row.signed_receipts === "string" ? JSON.parse(row.signed_receipts) : row.signed_receipts
  ) as Partial<StoredReceipts> | null;
  return {
    status: String(row.receipt_status) as StoredReceipts["status"],
    signer: optionalText(row.receipt_signer),
    offerReceipt: stored?.offerReceipt,
    usageReceipt: stored?.usageReceipt,
    problems: stored?.problems ?? [],
  };
}

function disputeOf(row: SqlRow): SpendDispute {
  return {
    id: Number(row.id),
    reservationId: String(row.reservation_id),
    origin: String(row.origin),
    reason: String(row.reason) as SpendDispute["reason"],
    chargedAtomic: BigInt(String(row.charged_atomic)),
    justifiedAtomic: optionalBigint(row.justified_atomic),
    maxAtomic: BigInt(String(row.max_atomic)),
    transaction: optionalText(row.transaction),
    network: optionalText(row.network),
    details: (typeof row.details === "string" ? JSON.parse(row.details) : row.details) as Record<
      string,
      unknown
    >,
    status: String(row.status) as SpendDispute["status"],
    createdAt: dateOf(row.created_at),
  };
}
