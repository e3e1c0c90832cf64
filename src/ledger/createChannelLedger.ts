import { z } from "zod";
import { TollgateError } from "../errors/index.js";
import type { ChannelConfigRecord, ChannelLedger, ChannelRecord } from "./ChannelLedger.js";
import { bindChannelChain, boundChannelChain, listSetAsideChannels } from "./channelChains.js";
import type { SqlClient, SqlExecutor } from "./SqlClient.js";
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
       onchain_synced_at = EXCLUDED.onchain_synced_at, settled_atomic = EXCLUDED.settled_atomic,
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

/** A `ChannelLedger` over any `SqlClient` whose schema `applyMigrations` brought up to date. */
export function createChannelLedger(sql: SqlClient): ChannelLedger {
  return {
    async get(channelId) {
      const [row] = await sql.query(`SELECT ${channelColumns} FROM channels WHERE channel_id = $1`, [
        normalizeId(channelId),
      ]);
      return row === undefined ? undefined : toChannelRecord(row);
    },

    async list() {
      const rows = await sql.query(`SELECT ${channelColumns} FROM channels ORDER BY created_at, channel_id`);
      return rows.map(toChannelRecord);
    },

    async update(channelId, decide) {
      const id = normalizeId(channelId);
      return sql.transaction(async (tx) => {
        // One writer per channel on every replica: the lock holds until this transaction ends, and
        // covers a channel whose row does not exist yet. A client that serializes statements (PGlite:
        // one connection, a transaction holds its queue) already has no other writer to wait for.
        if (!sql.serializesStatements)
          await tx.query("SELECT pg_advisory_xact_lock(hashtext('tollgate:channel:' || $1))", [id]);
        const [row] = await tx.query(`SELECT ${channelColumns} FROM channels WHERE channel_id = $1`, [id]);
        const decision = decide(row === undefined ? undefined : toChannelRecord(row));
        if (decision.next !== undefined) {
          if (normalizeId(decision.next.channelId) !== id) {
            throw new TollgateError({
              code: "TOLLGATE_INTERNAL",
              shortMessage: "a channel update may not change the channel id",
            });
          }
          await writeChannel(tx, decision.next);
          await decision.alsoRun?.(tx);
        }
        return decision.result;
      });
    },

    bindChain: (chain, options) => bindChannelChain(sql, chain, options),
    boundChain: (network) => boundChannelChain(sql, network),
    listSetAside: () => listSetAsideChannels(sql),

    async markSettled(entries) {
      for (const entry of entries) {
        await sql.query(
          `UPDATE channels SET settled_atomic = GREATEST(settled_atomic, $2::numeric), updated_at = now()
           WHERE channel_id = $1`,
          [normalizeId(entry.channelId), atomicParam(entry.settledAtomic, "settledAtomic")],
        );
      }
    },
  };
}
