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
  /**
   * One more statement written atomically with the channel, only when `next` is written (e.g. the
   * payment row). It must return a row where it applies: when it returns none, nothing of the update
   * is written and the update throws. On PGlite, for a channel already stored, the two are one statement.
   */
  alsoWrite?: AlsoWrite | undefined;
};

/** A data-modifying statement with `RETURNING` (or a query), its parameters numbered from $1. */
export type AlsoWrite = {
  text: string;
  params: readonly unknown[];
  /**
   * The same write and the channel's charge columns (charged, the latest voucher, the request's time) as one
   * call of a stored function, whose plan the database keeps. A ledger may use it when those columns are all
   * the update changes; it returns `written` 1, or 0 when the write applies to nothing (nothing is written),
   * and fails with SQLSTATE P0002 when the channel is not stored.
   */
  withCharge?:
    | ((channelId: string, next: ChannelRecord) => { text: string; params: readonly unknown[] })
    | undefined;
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

/** A chain as the ledger tells chains apart: a chain id can be reused (a devnet started afresh), its block 0 cannot. */
export type ChannelChain = {
  /** CAIP-2 network id, e.g. `eip155:31337`. */
  network: string;
  /** The hash of the chain's block 0. */
  genesisHash: `0x${string}`;
  /** When its block 0 was made. */
  genesisAt: Date;
};

/** A channel row of a chain that is gone, kept whole beside the ledger's channels (and out of their way). */
export type SetAsideChannel = {
  channelId: `0x${string}`;
  network: string;
  /** Block-0 hash of the chain it was recorded on; null for a row from before chains were recorded. */
  genesisHash: string | null;
  chargedAtomic: bigint;
  totalClaimedAtomic: bigint;
  /** The payment rows up to this id were made before the row was set aside, on the chain gone. */
  paymentsThroughId: number;
  reason: string;
  setAsideAt: Date;
};

/** What binding a network's channels to a chain found and did. */
export type BindChannelChainResult =
  /** The channels were recorded on this chain already: nothing changed. */
  | { kind: "same" }
  /**
   * The network's channels are bound to this chain from now on; the rows of another chain were set aside.
   * `previousGenesisHash` is undefined on a first binding, where rows from before chains were recorded are
   * adopted, unless they were last written before this chain's block 0 existed.
   */
  | { kind: "bound"; previousGenesisHash: string | undefined; adopted: number; setAside: SetAsideChannel[] }
  /** Bound to another chain, and `allowChange` was false: nothing changed. */
  | { kind: "refused"; previousGenesisHash: string };

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
  /**
   * Binds the network's channels to `chain`, once per start: rows recorded on another chain are set aside
   * (moved out whole, in one transaction), so that no state of one chain is applied on another. With
   * `allowChange` false, a ledger bound to another chain is left as it is and the answer says so.
   */
  bindChain(chain: ChannelChain, options: { allowChange: boolean }): Promise<BindChannelChainResult>;
  /** The block-0 hash of the chain the network's channels are bound to; undefined before any binding. */
  boundChain(network: string): Promise<string | undefined>;
  /** Channel rows set aside, oldest first. */
  listSetAside(): Promise<SetAsideChannel[]>;
  /** Records that a settle swept each channel's claims up to `settledAtomic` to the receiver. */
  markSettled(entries: readonly { channelId: string; settledAtomic: bigint }[]): Promise<void>;
  /**
   * Runs `job` while no other process on this database runs one under the same `name` (the claim,
   * settle and refund rounds of one receiver and token): replicas take turns, so a round reads what the
   * previous one booked and never sends the same claim again. In a database one process holds, `job` runs.
   */
  exclusively<T>(name: string, job: () => Promise<T>): Promise<T>;
}
