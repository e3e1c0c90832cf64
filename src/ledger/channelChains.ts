import { z } from "zod";
import { TollgateError } from "../errors/index.js";
import type { BindChannelChainResult, ChannelChain, SetAsideChannel } from "./ChannelLedger.js";
import type { SqlClient, SqlExecutor } from "./SqlClient.js";

const setAsideColumns = `channel_id, network, genesis_hash, row->>'charged_atomic' AS charged_atomic,
  row->>'total_claimed_atomic' AS total_claimed_atomic, payments_through_id::text AS payments_through_id,
  reason, (extract(epoch FROM set_aside_at) * 1000)::bigint::text AS set_aside_ms`;

const digits = z.string().regex(/^[0-9]+$/);
const setAsideRowSchema = z.object({
  channel_id: z.string().regex(/^0x[0-9a-f]*$/) as unknown as z.ZodType<`0x${string}`>,
  network: z.string(),
  genesis_hash: z.string().nullable(),
  charged_atomic: digits.transform((value) => BigInt(value)),
  total_claimed_atomic: digits.transform((value) => BigInt(value)),
  payments_through_id: digits.transform((value) => Number(value)),
  reason: z.string(),
  set_aside_ms: digits.transform((value) => new Date(Number(value))),
});

function toSetAsideChannel(row: unknown): SetAsideChannel {
  const parsed = setAsideRowSchema.safeParse(row);
  if (!parsed.success)
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `channels_set_aside row has an unexpected ${parsed.error.issues[0]?.path.join(".") ?? "shape"}`,
      details: { issues: parsed.error.issues },
      cause: parsed.error,
    });
  const r = parsed.data;
  return {
    channelId: r.channel_id,
    network: r.network,
    genesisHash: r.genesis_hash,
    chargedAtomic: r.charged_atomic,
    totalClaimedAtomic: r.total_claimed_atomic,
    paymentsThroughId: r.payments_through_id,
    reason: r.reason,
    setAsideAt: r.set_aside_ms,
  };
}

/** Moves the network's channel rows that `where` picks into `channels_set_aside`, whole, and returns them. */
async function setAside(
  tx: SqlExecutor,
  where: string,
  params: readonly unknown[],
  reason: string,
): Promise<SetAsideChannel[]> {
  const rows = await tx.query(
    `WITH moved AS (DELETE FROM channels WHERE ${where} RETURNING *)
     INSERT INTO channels_set_aside (channel_id, network, genesis_hash, row, payments_through_id, reason)
     SELECT channel_id, network, genesis_hash, to_jsonb(moved), (SELECT COALESCE(max(id), 0) FROM payments),
       $${params.length + 1}
       FROM moved ORDER BY created_at, channel_id
     RETURNING ${setAsideColumns}`,
    [...params, reason],
  );
  return rows.map(toSetAsideChannel);
}

/** Binds a network's channels to one chain; see `ChannelLedger.bindChain`. */
export async function bindChannelChain(
  sql: SqlClient,
  chain: ChannelChain,
  { allowChange }: { allowChange: boolean },
): Promise<BindChannelChainResult> {
  const genesisHash = chain.genesisHash.toLowerCase();
  if (!/^0x[0-9a-f]{64}$/.test(genesisHash))
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `a chain's block-0 hash must be 32 bytes of hex, not ${chain.genesisHash}`,
    });
  return sql.transaction(async (tx) => {
    if (!sql.serializesStatements)
      await tx.query("SELECT pg_advisory_xact_lock(hashtext('tollgate:channel-chain:' || $1))", [
        chain.network,
      ]);
    const [bound] = await tx.query<{ genesis_hash: string }>(
      "SELECT genesis_hash FROM channel_chains WHERE network = $1",
      [chain.network],
    );
    if (bound?.genesis_hash === genesisHash) return { kind: "same" };
    if (bound && !allowChange) return { kind: "refused", previousGenesisHash: bound.genesis_hash };
    const setAsideRows = bound
      ? await setAside(
          tx,
          "network = $1 AND genesis_hash IS DISTINCT FROM $2",
          [chain.network, genesisHash],
          `recorded on another chain than the one whose block 0 is ${genesisHash}`,
        )
      : // Rows from before chains were recorded belong to this chain unless they were written before it began.
        await setAside(
          tx,
          `network = $1 AND ((genesis_hash IS NOT NULL AND genesis_hash <> $2)
             OR (genesis_hash IS NULL AND updated_at < $3::timestamptz))`,
          [chain.network, genesisHash, chain.genesisAt.toISOString()],
          `last written before the chain whose block 0 is ${genesisHash} began`,
        );
    const adopted = await tx.query(
      "UPDATE channels SET genesis_hash = $2 WHERE network = $1 AND genesis_hash IS NULL RETURNING channel_id",
      [chain.network, genesisHash],
    );
    await tx.query(
      `INSERT INTO channel_chains (network, genesis_hash) VALUES ($1, $2)
       ON CONFLICT (network) DO UPDATE SET genesis_hash = EXCLUDED.genesis_hash, bound_at = now()`,
      [chain.network, genesisHash],
    );
    return {
      kind: "bound",
      previousGenesisHash: bound?.genesis_hash,
      adopted: adopted.length,
      setAside: setAsideRows,
    };
  });
}

/** The block-0 hash the network's channels are bound to. */
export async function boundChannelChain(sql: SqlExecutor, network: string): Promise<string | undefined> {
  const [row] = await sql.query<{ genesis_hash: string }>(
    "SELECT genesis_hash FROM channel_chains WHERE network = $1",
    [network],
  );
  return row?.genesis_hash;
}

/** Every channel row set aside, oldest first. */
export async function listSetAsideChannels(sql: SqlExecutor): Promise<SetAsideChannel[]> {
  const rows = await sql.query(`SELECT ${setAsideColumns} FROM channels_set_aside ORDER BY id`);
  return rows.map(toSetAsideChannel);
}
