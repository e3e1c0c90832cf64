import { z } from "zod";
import { type Logger, TollgateError } from "../errors/index.js";
import type { AlsoWrite, ChannelConfigRecord, ChannelLedger, ChannelRecord } from "./ChannelLedger.js";
import { bindChannelChain, boundChannelChain, listSetAsideChannels } from "./channelChains.js";
import { channelShortfallAtomic } from "./channelShortfall.js";
import type { ChargeJournal } from "./createChargeJournal.js";
import { CHARGE_VOUCHER_ROW_CALL, CHARGE_VOUCHER_ROW_PARAMS } from "./paymentRowWrites.js";
import type { SqlClient, SqlExecutor } from "./SqlClient.js";
import { singleProcessBook } from "./singleProcessBook.js";
import { atomicParam, jsonParam } from "./sqlValues.js";

const channelColumns = `channel_id, network, payer, receiver, token, config,
  charged_atomic::text AS charged_atomic, signed_max_atomic::text AS signed_max_atomic, signature,
  balance_atomic::text AS balance_atomic, total_claimed_atomic::text AS total_claimed_atomic,
  withdraw_requested_at::text AS withdraw_requested_at, refund_nonce::text AS refund_nonce,
  onchain_synced_at::text AS onchain_synced_at, settled_atomic::text AS settled_atomic,
  deposited_atomic::text AS deposited_atomic, refunded_atomic::text AS refunded_atomic,
  last_request_at::text AS last_request_at, pending_id, pending_max_atomic::text AS pending_max_atomic,
  pending_expires_at::text AS pending_expires_at`;

const atomic = z
  .string()
  .regex(/^[0-9]+$/)
  .transform((value) => BigInt(value));
const millis = z
  .string()
  .regex(/^[0-9]+$/)
  .transform((value) => Number(value));
const hex = z.string().regex(/^0x[0-9a-fA-F]*$/) as unknown as z.ZodType<`0x${string}`>;

const channelRowSchema = z.object({
  channel_id: hex,
  network: z.string(),
  payer: z.string(),
  receiver: z.string(),
  token: z.string(),
  config: z.custom<ChannelConfigRecord>((value) => typeof value === "object" && value !== null),
  charged_atomic: atomic,
  signed_max_atomic: atomic,
  signature: hex,
  balance_atomic: atomic,
  total_claimed_atomic: atomic,
  withdraw_requested_at: millis,
  refund_nonce: atomic,
  onchain_synced_at: millis.nullable(),
  settled_atomic: atomic,
  deposited_atomic: atomic,
  refunded_atomic: atomic,
  last_request_at: millis,
  pending_id: z.string().nullable(),
  pending_max_atomic: atomic.nullable(),
  pending_expires_at: millis.nullable(),
});

function toChannelRecord(row: unknown): ChannelRecord {
  const parsed = channelRowSchema.safeParse(row);
  if (!parsed.success) {
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `channels row has an unexpected ${parsed.error.issues[0]?.path.join(".") ?? "shape"}`,
      details: { issues: parsed.error.issues },
      cause: parsed.error,
    });
  }
  const r = parsed.data;
  return {
    channelId: r.channel_id,
    network: r.network,
    payer: r.payer,
    receiver: r.receiver,
    token: r.token,
    config: r.config,
    chargedAtomic: r.charged_atomic,
    signedMaxAtomic: r.signed_max_atomic,
    signature: r.signature,
    balanceAtomic: r.balance_atomic,
    totalClaimedAtomic: r.total_claimed_atomic,
    withdrawRequestedAt: r.withdraw_requested_at,
    refundNonce: r.refund_nonce,
    onchainSyncedAt: r.onchain_synced_at,
    settledAtomic: r.settled_atomic,
    depositedAtomic: r.deposited_atomic,
    refundedAtomic: r.refunded_atomic,
    lastRequestAt: r.last_request_at,
    pending:
      r.pending_id !== null && r.pending_max_atomic !== null && r.pending_expires_at !== null
        ? { id: r.pending_id, maxAtomic: r.pending_max_atomic, expiresAt: r.pending_expires_at }
        : undefined,
  };
}

const normalizeId = (channelId: string) => channelId.toLowerCase();

async function writeChannel(tx: SqlExecutor, channel: ChannelRecord): Promise<void> {
  const n = (value: bigint, field: string) => atomicParam(value, field);
  await tx.query(
    `INSERT INTO channels (channel_id, network, payer, receiver, token, config, charged_atomic, signed_max_atomic,
       signature, balance_atomic, total_claimed_atomic, withdraw_requested_at, refund_nonce, onchain_synced_at,
       settled_atomic, deposited_atomic, refunded_atomic, last_request_at, pending_id, pending_max_atomic,
       pending_expires_at, genesis_hash)
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::numeric, $8::numeric, $9, $10::numeric, $11::numeric, $12::bigint,
       $13::numeric, $14::bigint, $15::numeric, $16::numeric, $17::numeric, $18::bigint, $19, $20::numeric, $21::bigint,
       (SELECT genesis_hash FROM channel_chains WHERE network = $2))
     ON CONFLICT (channel_id) DO UPDATE SET
       config = EXCLUDED.config, charged_atomic = EXCLUDED.charged_atomic,
       signed_max_atomic = EXCLUDED.signed_max_atomic, signature = EXCLUDED.signature,
       balance_atomic = EXCLUDED.balance_atomic, total_claimed_atomic = EXCLUDED.total_claimed_atomic,
       withdraw_requested_at = EXCLUDED.withdraw_requested_at, refund_nonce = EXCLUDED.refund_nonce,
       onchain_synced_at = EXCLUDED.onchain_synced_at,
       -- markSettled takes no channel lock: a settle recorded since this update read the row stays.
       settled_atomic = GREATEST(channels.settled_atomic, EXCLUDED.settled_atomic),
       deposited_atomic = EXCLUDED.deposited_atomic, refunded_atomic = EXCLUDED.refunded_atomic,
       last_request_at = EXCLUDED.last_request_at, pending_id = EXCLUDED.pending_id,
       pending_max_atomic = EXCLUDED.pending_max_atomic, pending_expires_at = EXCLUDED.pending_expires_at,
       updated_at = now()`,
    [
      normalizeId(channel.channelId),
      channel.network,
      channel.payer.toLowerCase(),
      channel.receiver,
      channel.token,
      jsonParam(channel.config, "config"),
      n(channel.chargedAtomic, "chargedAtomic"),
      n(channel.signedMaxAtomic, "signedMaxAtomic"),
      channel.signature,
      n(channel.balanceAtomic, "balanceAtomic"),
      n(channel.totalClaimedAtomic, "totalClaimedAtomic"),
      String(channel.withdrawRequestedAt),
      n(channel.refundNonce, "refundNonce"),
      channel.onchainSyncedAt === null ? null : String(channel.onchainSyncedAt),
      n(channel.settledAtomic, "settledAtomic"),
      n(channel.depositedAtomic, "depositedAtomic"),
      n(channel.refundedAtomic, "refundedAtomic"),
      String(channel.lastRequestAt),
      channel.pending?.id ?? null,
      channel.pending ? n(channel.pending.maxAtomic, "pendingMaxAtomic") : null,
      channel.pending ? String(channel.pending.expiresAt) : null,
    ],
  );
}

/** The stored columns a channel update may change, how each is read from a record, and its SQL type. */
const changeableColumns: ReadonlyArray<{
  column: string;
  cast: string;
  value: (channel: ChannelRecord) => unknown;
}> = [
  { column: "network", cast: "text", value: (c) => c.network },
  { column: "payer", cast: "text", value: (c) => c.payer.toLowerCase() },
  { column: "receiver", cast: "text", value: (c) => c.receiver },
  { column: "token", cast: "text", value: (c) => c.token },
  { column: "config", cast: "jsonb", value: (c) => jsonParam(c.config, "config") },
  { column: "charged_atomic", cast: "numeric", value: (c) => atomicParam(c.chargedAtomic, "chargedAtomic") },
  {
    column: "signed_max_atomic",
    cast: "numeric",
    value: (c) => atomicParam(c.signedMaxAtomic, "signedMaxAtomic"),
  },
  { column: "signature", cast: "text", value: (c) => c.signature },
  { column: "balance_atomic", cast: "numeric", value: (c) => atomicParam(c.balanceAtomic, "balanceAtomic") },
  {
    column: "total_claimed_atomic",
    cast: "numeric",
    value: (c) => atomicParam(c.totalClaimedAtomic, "totalClaimedAtomic"),
  },
  { column: "withdraw_requested_at", cast: "bigint", value: (c) => String(c.withdrawRequestedAt) },
  { column: "refund_nonce", cast: "numeric", value: (c) => atomicParam(c.refundNonce, "refundNonce") },
  {
    column: "onchain_synced_at",
    cast: "bigint",
    value: (c) => (c.onchainSyncedAt === null ? null : String(c.onchainSyncedAt)),
  },
  { column: "settled_atomic", cast: "numeric", value: (c) => atomicParam(c.settledAtomic, "settledAtomic") },
  {
    column: "deposited_atomic",
    cast: "numeric",
    value: (c) => atomicParam(c.depositedAtomic, "depositedAtomic"),
  },
  {
    column: "refunded_atomic",
    cast: "numeric",
    value: (c) => atomicParam(c.refundedAtomic, "refundedAtomic"),
  },
  { column: "last_request_at", cast: "bigint", value: (c) => String(c.lastRequestAt) },
];

type ColumnChange = { column: string; cast: string; value: unknown };

/** The stored columns `next` changes from `before` (a stored row of the same channel). */
function changedColumns(before: ChannelRecord, next: ChannelRecord): ColumnChange[] {
  const changes: ColumnChange[] = [];
  for (const { column, cast, value } of changeableColumns) {
    const after = value(next);
    if (after !== value(before)) changes.push({ column, cast, value: after });
  }
  return changes;
}

/** Writes `changes` to a stored channel's row. */
async function writeChanges(
  tx: SqlExecutor,
  channelId: string,
  changes: readonly ColumnChange[],
): Promise<void> {
  if (changes.length === 0) return;
  const rows = await tx.query(`${updateStatement(changes, 1)} RETURNING channel_id`, [
    channelId,
    ...changes.map((change) => change.value),
  ]);
  if (rows.length !== 1) throw notStored(channelId);
}

/** `UPDATE channels SET …` of the changes, the channel id at $`first` and the values after it. */
function updateStatement(changes: readonly ColumnChange[], first: number): string {
  const sets = changes.map((change, i) => `${change.column} = $${first + i + 1}::${change.cast}`);
  return `UPDATE channels SET ${sets.join(", ")}, updated_at = now() WHERE channel_id = $${first}`;
}

const notStored = (channelId: string) =>
  new Error(`channel ${channelId} is not stored; its update is not written`);
const alsoNotApplied = (channelId: string) =>
  new Error(
    `channel ${channelId}: the statement written with its update applied to nothing; nothing is written`,
  );

/** Runs the statement written with an update in the update's transaction: no row means nothing is written. */
async function runAlsoWrite(tx: SqlExecutor, channelId: string, also: AlsoWrite): Promise<void> {
  const rows = await tx.query(also.text, also.params);
  if (rows.length === 0) throw alsoNotApplied(channelId);
}

/**
 * The changes and the statement written with them as one statement (one call into PGlite): the
 * channel is written only if that statement returned a row, and a channel that is not stored makes
 * the whole statement fail (division by its zero count), so neither is written without the other.
 */
async function writeChangesWith(
  db: SqlExecutor,
  channelId: string,
  changes: readonly ColumnChange[],
  also: AlsoWrite,
): Promise<void> {
  if (changes.length === 0) return runAlsoWrite(db, channelId, also);
  const first = also.params.length + 1;
  let rows: Array<Record<string, unknown>>;
  try {
    rows = await db.query(
      `WITH also AS (${also.text}),
            channel AS (${updateStatement(changes, first)} AND EXISTS (SELECT 1 FROM also) RETURNING channel_id)
       SELECT CASE WHEN (SELECT count(*) FROM also) = 0 THEN 0
                   ELSE 1 / (SELECT count(*) FROM channel)::int END AS written`,
      [...also.params, channelId, ...changes.map((change) => change.value)],
    );
  } catch (error) {
    const sqlState = (error as { details?: { sqlState?: unknown } }).details?.sqlState;
    if (sqlState === "22012") throw notStored(channelId);
    throw error;
  }
  if (Number(rows[0]?.written ?? 0) === 0) throw alsoNotApplied(channelId);
}

/** The columns a charge changes: what `AlsoWrite.withCharge` writes. */
const chargeColumns = new Set(["charged_atomic", "signed_max_atomic", "signature", "last_request_at"]);

/** Runs an `AlsoWrite.withCharge` call: the write and the channel's charge, or neither. */
async function writeCharge(
  db: SqlExecutor,
  channelId: string,
  call: { text: string; params: readonly unknown[] },
): Promise<void> {
  let rows: Array<Record<string, unknown>>;
  try {
    rows = await db.query(call.text, call.params);
  } catch (error) {
    const sqlState = (error as { details?: { sqlState?: unknown } }).details?.sqlState;
    if (sqlState === "P0002") throw notStored(channelId);
    throw error;
  }
  if (Number(rows[0]?.written ?? 0) === 0) throw alsoNotApplied(channelId);
}

export type CreateChannelLedgerOptions = {
  /** Channels a single-process ledger keeps in memory, beyond those with a request in flight; default 10,000. */
  keptChannels?: number;
  /**
   * A single-process ledger returns a charge (`AlsoWrite.withCharge`) before the database has it: the
   * charge is appended to `journal` and written right after, on the next turn of the event loop, so that
   * the answer it is for goes out first. Absent: written before the update returns.
   */
  deferCharges?: DeferredCharges | undefined;
};

/** Where a single-process ledger's deferred charges are tracked (see `CreateChannelLedgerOptions`). */
export type DeferredCharges = {
  journal: ChargeJournal;
  logger: Logger;
  /** The writes not yet finished; the ledger's `close` waits for them (the journal, closed, refuses more). */
  inFlight: Set<Promise<void>>;
};

/** A `ChannelLedger` over any `SqlClient` whose schema `applyMigrations` brought up to date. */
export function createChannelLedger(sql: SqlClient, options: CreateChannelLedgerOptions = {}): ChannelLedger {
  return sql.serializesStatements
    ? createSingleProcessChannelLedger(sql, options.keptChannels ?? 10_000, options.deferCharges)
    : createSharedChannelLedger(sql);
}

/**
 * Writes the charges a previous process journaled and never saw written, each only on the charged total
 * it was made on (a charge already written, or overtaken, is passed over), then empties the journal.
 * Runs before the ledger serves anything; a write that fails fails the opening and keeps the journal.
 */
export async function writeJournaledCharges(
  sql: SqlClient,
  journal: ChargeJournal,
  logger: Logger,
): Promise<void> {
  const charges = journal.leftOver();
  let written = 0;
  for (const charge of charges) {
    if (charge.params.length !== CHARGE_VOUCHER_ROW_PARAMS)
      throw new TollgateError({
        code: "TOLLGATE_LEDGER_FAILED",
        shortMessage: `a charge in the ledger's charge journal ${journal.path} has ${charge.params.length} values where ${CHARGE_VOUCHER_ROW_PARAMS} are written; the journal is kept: start the version that wrote it`,
        details: { channelId: charge.channelId, journal: journal.path },
      });
    if (!(await stillOnBase(sql, charge.channelId, charge.chargedBeforeAtomic))) continue;
    let result: Record<string, unknown> | undefined;
    try {
      [result] = await sql.query(CHARGE_VOUCHER_ROW_CALL, charge.params);
    } catch (error) {
      // The journal is kept: the next opening tries again.
      throw new TollgateError({
        code: "TOLLGATE_LEDGER_FAILED",
        shortMessage: `a channel charge answered before a stop could not be written from ${journal.path} (${String(error)}); the journal is kept: make the ledger writable again (room on the disk) and start again`,
        details: { channelId: charge.channelId, journal: journal.path },
        cause: error,
      });
    }
    // 0: its row is in already (a zero charge leaves the total where it was).
    if (Number(result?.written ?? 0) === 1) written += 1;
  }
  journal.clear();
  if (charges.length > 0)
    logger.info(
      { journaled: charges.length, written, journal: journal.path },
      "ledger: wrote the channel charges a stopped process answered before its database had them",
    );
}

/** Whether the stored channel's charged total is still the one a journaled charge was made on (else it is written, or the channel is gone). */
async function stillOnBase(
  db: SqlExecutor,
  channelId: string,
  chargedBeforeAtomic: string,
): Promise<boolean> {
  const [row] = await db.query(
    `SELECT charged_atomic::text AS charged_atomic FROM channels WHERE channel_id = $1`,
    [channelId],
  );
  return row?.charged_atomic === chargedBeforeAtomic;
}

async function selectChannel(db: SqlExecutor, id: string): Promise<ChannelRecord | undefined> {
  const [row] = await db.query(`SELECT ${channelColumns} FROM channels WHERE channel_id = $1`, [id]);
  return row === undefined ? undefined : toChannelRecord(row);
}

async function listChannels(db: SqlExecutor): Promise<ChannelRecord[]> {
  const rows = await db.query(`SELECT ${channelColumns} FROM channels ORDER BY created_at, channel_id`);
  return rows.map(toChannelRecord);
}

function settleStatement(db: SqlExecutor, channelId: string, settledAtomic: bigint) {
  return db.query(
    `UPDATE channels SET settled_atomic = GREATEST(settled_atomic, $2::numeric), updated_at = now()
     WHERE channel_id = $1`,
    [normalizeId(channelId), atomicParam(settledAtomic, "settledAtomic")],
  );
}

/** A deferred charge whose write failed is tried again after this long, doubled each time up to the most. */
const CHARGE_RETRY_FIRST_MS = 1_000;
const CHARGE_RETRY_MAX_MS = 60_000;

/** A channel whose escrow holds less than was charged on it, all of it claimed (see channelShortfallAtomic). */
const isShort = (channel: ChannelRecord) => channelShortfallAtomic(channel) > 0n;

function checkSameChannel(id: string, next: ChannelRecord) {
  if (normalizeId(next.channelId) !== id) {
    throw new TollgateError({
      code: "TOLLGATE_INTERNAL",
      shortMessage: "a channel update may not change the channel id",
    });
  }
}

/**
 * Channels in a database several processes share (PostgreSQL, replicas): each update reads and
 * writes the row in one transaction under a per-channel advisory lock, reservations included.
 */
function createSharedChannelLedger(sql: SqlClient): ChannelLedger {
  return {
    get: (channelId) => selectChannel(sql, normalizeId(channelId)),
    list: () => listChannels(sql),

    async update(channelId, decide) {
      const id = normalizeId(channelId);
      return sql.transaction(async (tx) => {
        // One writer per channel on every replica: the lock holds until this transaction ends, and
        // covers a channel whose row does not exist yet.
        await tx.query("SELECT pg_advisory_xact_lock(hashtext('tollgate:channel:' || $1))", [id]);
        const decision = decide(await selectChannel(tx, id));
        if (decision.next !== undefined) {
          checkSameChannel(id, decision.next);
          await writeChannel(tx, decision.next);
          if (decision.alsoWrite) await runAlsoWrite(tx, id, decision.alsoWrite);
        }
        return decision.result;
      });
    },

    bindChain: (chain, options) => bindChannelChain(sql, chain, options),
    boundChain: (network) => boundChannelChain(sql, network),
    listSetAside: () => listSetAsideChannels(sql),

    async markSettled(entries) {
      for (const entry of entries) await settleStatement(sql, entry.channelId, entry.settledAtomic);
    },

    async exclusively<T>(name: string, job: () => Promise<T>): Promise<T> {
      // The lock holds one connection in an open transaction for the job's length; the job's own
      // statements take other connections. A transaction that fails to end after the job ran (the
      // connection dropped, which released the lock) does not undo what the job did: its outcome stands.
      let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
      try {
        await sql.transaction(async (tx) => {
          // The transaction stays idle while the job runs (a claim waits to be mined): a server that ends
          // idle transactions (idle_in_transaction_session_timeout) would end it, and free the lock mid-round.
          await tx.query("SET LOCAL idle_in_transaction_session_timeout = 0");
          await tx.query("SELECT pg_advisory_xact_lock(hashtext('tollgate:channel-round:' || $1))", [name]);
          outcome = await job().then(
            (value) => ({ ok: true as const, value }),
            (error: unknown) => ({ ok: false as const, error }),
          );
        });
      } catch (error) {
        if (outcome === undefined) throw error;
      }
      if (outcome === undefined) throw new Error("channel round: the job did not run");
      if (!outcome.ok) throw outcome.error;
      return outcome.value;
    },
  };
}

/**
 * Channels in a database one process holds alone (PGlite): this object is the table's only writer,
 * so it keeps the channels it works with in memory and runs one update per channel at a time. A
 * request in flight (its reservation, its time) lives in memory only: taking or freeing a channel
 * writes nothing, and a restart, which ends every request in flight, finds every channel free.
 * Everything else is written before the update returns, with its other statements in one transaction,
 * except a charge when `deferCharges` is given: journaled before, written right after (see there).
 */
function createSingleProcessChannelLedger(
  sql: SqlClient,
  keptChannels: number,
  deferCharges: DeferredCharges | undefined,
): ChannelLedger {
  const kept = new Map<string, ChannelRecord>();
  const book = singleProcessBook(sql);
  const queues = new Map<string, Promise<void>>();
  /** A channel's charge returned before it was written: the channel's next update waits for the write. */
  const writing = new Map<string, Promise<void>>();
  /** Channels whose answered charge could not be written: they take no request until the ledger is opened again. */
  const unwritten = new Map<string, string>();

  /** Runs `work` after every earlier update of the channel, and its deferred write, has finished. */
  const oneAtATime = <T>(id: string, work: () => Promise<T>): Promise<T> => {
    const run = (queues.get(id) ?? Promise.resolve()).then(work);
    const done = run.then(
      () => writing.get(id),
      () => writing.get(id),
    );
    queues.set(id, done);
    void done.then(() => {
      if (queues.get(id) === done) queues.delete(id);
    });
    return run;
  };

  const keep = (id: string, channel: ChannelRecord) => {
    kept.delete(id);
    kept.set(id, channel);
    if (kept.size <= keptChannels) return;
    // The least recently used channel with no request in flight, and no charge unwritten, is read again
    // when next needed.
    for (const [oldId, old] of kept) {
      if (old.pending || writing.has(oldId) || unwritten.has(oldId)) continue;
      kept.delete(oldId);
      break;
    }
  };

  /**
   * Journals a charge and writes it on the next turn of the event loop, after the answer it is for went
   * out. A write that fails stays in the journal, to be written when the ledger is next opened, and its
   * channel takes no further request until then (so the charge's base stays the one it was made on).
   */
  const writeAfterAnswer = (
    id: string,
    chargedBefore: bigint,
    call: { text: string; params: readonly unknown[] },
    { journal, logger, inFlight }: DeferredCharges,
  ) => {
    const entry = journal.append({
      channelId: id,
      chargedBeforeAtomic: chargedBefore.toString(),
      params: [...call.params],
    });
    let failed = false;
    /**
     * Tries the failed write again, alone on its channel, until it is written or the ledger closes. A
     * charge the database holds already (a write that failed after it committed) is not written again.
     */
    const retry = (delayMs: number, attempt: number) => {
      const timer = setTimeout(() => {
        if (journal.closed) return;
        const base = chargedBefore.toString();
        void oneAtATime(id, async () => {
          if (await stillOnBase(sql, id, base)) await writeCharge(sql, id, call);
        }).then(
          () => {
            unwritten.delete(id);
            journal.rewritten(entry);
            logger.info(
              { channelId: id, attempt },
              "ledger: an answered channel charge was written on a later try",
            );
          },
          (error: unknown) => {
            unwritten.set(id, String(error));
            const nextMs = Math.min(delayMs * 2, CHARGE_RETRY_MAX_MS);
            logger.error(
              { channelId: id, attempt, error: String(error), retryInMs: nextMs },
              "ledger: an answered channel charge could not be written again; its channel still takes no request",
            );
            retry(nextMs, attempt + 1);
          },
        );
      }, delayMs);
      timer.unref();
    };
    const write: Promise<void> = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => writeCharge(sql, id, call))
      .catch((error: unknown) => {
        failed = true;
        unwritten.set(id, String(error));
        logger.error(
          { channelId: id, error: String(error), journal: journal.path },
          "ledger: an answered channel charge could not be written; it stays in the journal and is tried again, and the channel takes no request until it is written",
        );
        retry(CHARGE_RETRY_FIRST_MS, 2);
      })
      .finally(() => {
        journal.written(entry, !failed);
        inFlight.delete(write);
        if (writing.get(id) === write) writing.delete(id);
      });
    inFlight.add(write);
    writing.set(id, write);
  };

  const current = async (id: string): Promise<ChannelRecord | undefined> => {
    const known = kept.get(id);
    if (known) return known;
    const stored = await selectChannel(sql, id);
    return stored && { ...stored, pending: undefined };
  };

  return {
    get: (channelId) => {
      const id = normalizeId(channelId);
      return oneAtATime(id, () => current(id));
    },

    async list() {
      const stored = await listChannels(sql);
      return stored.map(
        (channel) => kept.get(normalizeId(channel.channelId)) ?? { ...channel, pending: undefined },
      );
    },

    update(channelId, decide) {
      const id = normalizeId(channelId);
      return oneAtATime(id, async () => {
        const before = await current(id);
        const decision = decide(before);
        const next = decision.next;
        if (next === undefined) return decision.result;
        checkSameChannel(id, next);
        const takesRequest = decision.alsoWrite || (next.pending && next.pending.id !== before?.pending?.id);
        const cause = unwritten.get(id);
        if (takesRequest && cause !== undefined)
          throw new TollgateError({
            code: "TOLLGATE_LEDGER_FAILED",
            shortMessage: `channel ${id}: its last charge is not in the database yet (${cause}); it takes no request until the charge is written (tried again every minute at most, and from the journal at the next start)`,
            details: { channelId: id },
          });
        const changes = before ? changedColumns(before, next) : [];
        // A request in flight (its reservation, its time) alone is not written.
        const also = decision.alsoWrite;
        if (!before)
          await sql.transaction(async (tx) => {
            await writeChannel(tx, { ...next, pending: undefined });
            if (also) await runAlsoWrite(tx, id, also);
          });
        else if (also?.withCharge && changes.every((change) => chargeColumns.has(change.column))) {
          const call = also.withCharge(id, next);
          if (deferCharges && call.text === CHARGE_VOUCHER_ROW_CALL)
            writeAfterAnswer(id, before.chargedAtomic, call, deferCharges);
          else await writeCharge(sql, id, call);
        } else if (also) await writeChangesWith(sql, id, changes, also);
        else if (changes.some((c) => c.column !== "last_request_at")) await writeChanges(sql, id, changes);
        keep(id, next);
        // The payer owes while a channel of its holds less than was charged on it.
        if (isShort(next) !== (before !== undefined && isShort(before)))
          await book.noteChannel({
            network: next.network,
            payer: next.payer,
            channelId: id,
            short: isShort(next),
          });
        return decision.result;
      });
    },

    async bindChain(chain, options) {
      await Promise.all(writing.values());
      const bound = await bindChannelChain(sql, chain, options);
      // Rows set aside left the table: the channels kept of that network are read again when next needed.
      if (bound.kind === "bound") {
        for (const [id, channel] of kept) if (channel.network === chain.network) kept.delete(id);
        book.reloadChannels();
      }
      return bound;
    },
    boundChain: (network) => boundChannelChain(sql, network),
    listSetAside: () => listSetAsideChannels(sql),

    async markSettled(entries) {
      for (const entry of entries) {
        const id = normalizeId(entry.channelId);
        await oneAtATime(id, async () => {
          await settleStatement(sql, id, entry.settledAtomic);
          const known = kept.get(id);
          if (known && known.settledAtomic < entry.settledAtomic)
            kept.set(id, { ...known, settledAtomic: entry.settledAtomic });
        });
      }
    },

    // One process holds the database: its rounds already run one after another.
    exclusively: (_name, job) => job(),
  };
}
