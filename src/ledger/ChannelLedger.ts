import type { SqlExecutor } from "./SqlClient.js";

/** A batch-settlement channel's configuration, as the payer signed it (`ChannelConfig` of the spec). */
export type ChannelConfigRecord = {
  payer: `0x${string}`;
  payerAuthorizer: `0x${string}`;
  receiver: `0x${string}`;
  receiverAuthorizer: `0x${string}`;
  token: `0x${string}`;
  withdrawDelay: number;
  salt: `0x${string}`;
};

/** The one request in flight on a channel. */
export type ChannelPendingRequest = {
  id: string;
  /** The cumulative amount its voucher signs. */
  maxAtomic: bigint;
  /** `Date.now()` after which the reservation is dead (a crashed request). */
  expiresAt: number;
};

/**
 * A payment channel this gateway is paid through, as the ledger holds it. Money is bigint in
 * the token's atomic units; times are `Date.now()` milliseconds (0 = never).
 */
export type ChannelRecord = {
  /** Lower-case 0x channel id. */
  channelId: `0x${string}`;
  network: string;
  /** Lower-case payer address. */
  payer: string;
  receiver: string;
  token: string;
  config: ChannelConfigRecord;
  /** Total charged by this gateway on the channel: what the claims will take. */
  chargedAtomic: bigint;
  /** The latest voucher: its cumulative amount (≥ charged) and signature. */
  signedMaxAtomic: bigint;
  signature: `0x${string}`;
  /** The channel's on-chain state when last read. */
  balanceAtomic: bigint;
  totalClaimedAtomic: bigint;
  /** Unix seconds the payer started a withdrawal; 0 when none. */
  withdrawRequestedAt: number;
  refundNonce: bigint;
  onchainSyncedAt: number | null;
  /** Claimed funds of this channel swept to the receiver. */
  settledAtomic: bigint;
  depositedAtomic: bigint;
  refundedAtomic: bigint;
  lastRequestAt: number;
  pending: ChannelPendingRequest | undefined;
};

/** What an atomic channel update decides: the row to write (or none) and what to tell the caller. */
export type ChannelUpdate<T> = {
  /** The new row; undefined leaves the stored one as it is. */
  next?: ChannelRecord | undefined;
  result: T;
  /** More statements in the same transaction, run only when `next` is written (e.g. the payment row). */
  alsoRun?: ((tx: SqlExecutor) => Promise<void>) | undefined;
};

/** Totals over the channels of one receiver and token. */
export type ChannelTotals = {
  channels: number;
  depositedAtomic: bigint;
  balanceAtomic: bigint;
  chargedAtomic: bigint;
  totalClaimedAtomic: bigint;
  settledAtomic: bigint;
};

/**
 * The gateway's channels: one row per channel, changed only through `update`, a read-modify-write
 * one at a time per channel, so two requests never both accept a voucher on one cumulative base.
 * In a shared database (PostgreSQL, replicas) each update is a transaction under a per-channel lock;
 * in a database one process holds (PGlite) the channels worked with are kept in memory, and a request
 * in flight (a reservation) is not written at all: a restart, which ends every request, frees it.
 */
export interface ChannelLedger {
  get(channelId: string): Promise<ChannelRecord | undefined>;
  /** Every channel, oldest first. */
  list(): Promise<ChannelRecord[]>;
  /** Atomically reads the channel (undefined when unknown), decides, and writes what `decide` returns. */
  update<T>(channelId: string, decide: (current: ChannelRecord | undefined) => ChannelUpdate<T>): Promise<T>;
  /** Records that a settle swept each channel's claims up to `settledAtomic` to the receiver. */
  markSettled(entries: readonly { channelId: string; settledAtomic: bigint }[]): Promise<void>;
}
