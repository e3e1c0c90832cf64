import type { BatchSettlementClientContext } from "@x402/evm/batch-settlement/client";
import type { SqlClient, SqlRow } from "../ledger/index.js";
import type { BuyerChannel, BuyerChannelInput, SpendStore } from "./SpendStore.js";

type ChannelMethods = Pick<
  SpendStore,
  | "recordChannel"
  | "recordDeposit"
  | "channelContext"
  | "saveChannelContext"
  | "deleteChannelContext"
  | "channels"
>;

/** Channel ids are keys in lower case, as the official client keys its storage. */
const keyOf = (channelId: string) => channelId.toLowerCase();

/** The spend store's channel table: channel configs, deposits and the client's channel records. */
export function buyerChannelQueries(sql: SqlClient): ChannelMethods {
  return {
    async recordChannel(input: BuyerChannelInput) {
      await sql.query(
        `INSERT INTO buyer_channels
           (channel_id, payer, origin, url, network, asset, pay_to, receiver_authorizer,
            withdraw_delay, salt, slot, config)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (channel_id) DO NOTHING`,
        [
          keyOf(input.channelId),
          input.payer.toLowerCase(),
          input.origin,
          input.url,
          input.network,
          input.asset,
          input.payTo,
          input.receiverAuthorizer,
          input.withdrawDelay,
          input.salt,
          input.slot,
          JSON.stringify(input.config),
        ],
      );
    },

    async recordDeposit(channelId, amountAtomic) {
      await sql.query(
        `UPDATE buyer_channels
            SET deposited_atomic = deposited_atomic + $2::numeric, deposits = deposits + 1, updated_at = now()
          WHERE channel_id = $1`,
        [keyOf(channelId), amountAtomic.toString()],
      );
    },

    async channelContext(channelId) {
      const [row] = await sql.query<{ client_context: unknown }>(
        "SELECT client_context FROM buyer_channels WHERE channel_id = $1",
        [keyOf(channelId)],
      );
      return contextOf(row?.client_context);
    },

    async saveChannelContext(channelId, context) {
      await sql.query(
        "UPDATE buyer_channels SET client_context = $2, updated_at = now() WHERE channel_id = $1",
        [keyOf(channelId), JSON.stringify(context)],
      );
    },

    async deleteChannelContext(channelId) {
      await sql.query(
        "UPDATE buyer_channels SET client_context = NULL, updated_at = now() WHERE channel_id = $1",
        [keyOf(channelId)],
      );
    },

    async channels({ origin, payer } = {}) {
      const rows = await sql.query(
        `SELECT * FROM buyer_channels
          WHERE ($1::text IS NULL OR origin = $1) AND ($2::text IS NULL OR payer = $2)
          ORDER BY created_at DESC, slot`,
        [origin ?? null, payer?.toLowerCase() ?? null],
      );
      return rows.map(channelOf);
    },
  };
}

function contextOf(value: unknown): BatchSettlementClientContext | undefined {
  if (value === null || value === undefined) return undefined;
  return (typeof value === "string" ? JSON.parse(value) : value) as BatchSettlementClientContext;
}

function channelOf(row: SqlRow): BuyerChannel {
  const config = (typeof row.config === "string" ? JSON.parse(row.config) : row.config) as Record<
    string,
    unknown
  >;
  const date = (value: unknown) => (value instanceof Date ? value : new Date(String(value)));
  return {
    channelId: String(row.channel_id),
    payer: String(row.payer),
    origin: String(row.origin),
    url: String(row.url),
    network: String(row.network),
    asset: String(row.asset),
    payTo: String(row.pay_to),
    receiverAuthorizer: String(row.receiver_authorizer),
    withdrawDelay: Number(row.withdraw_delay),
    salt: String(row.salt),
    slot: Number(row.slot),
    config,
    depositedAtomic: BigInt(String(row.deposited_atomic)),
    deposits: Number(row.deposits),
    context: contextOf(row.client_context),
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
  };
}
