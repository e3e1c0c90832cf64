import type { BatchSettlementClientContext } from "@x402/evm/batch-settlement/client";
import type { PolicyRefusal } from "./policyRefusal.js";

/** Where a reservation stands: counted at its maximum, its charge, or nothing. */
export type ReservationStatus = "reserved" | "settled" | "released" | "expired";

export type ReserveSpendInput = {
  /** The provider: the URL origin being paid. */
  origin: string;
  url: string;
  payer: string;
  scheme: string;
  network: string;
  asset: string;
  payTo: string;
  model?: string | undefined;
  /** The maximum about to be authorized. */
  maxAtomic: bigint;
  expectedAtomic?: bigint | undefined;
  /** The caps that apply: the policy's `daily` and the provider's `daily`. */
  dailyAtomic?: bigint | undefined;
  providerDailyAtomic?: bigint | undefined;
};

export type ReserveSpendResult =
  | { ok: true; id: string; day: string }
  | { ok: false; refusal: PolicyRefusal };

export type SpendReservation = {
  id: string;
  /** UTC day, `YYYY-MM-DD`. */
  day: string;
  origin: string;
  url: string;
  payer: string;
  scheme: string;
  network: string;
  asset: string;
  payTo: string;
  model: string | undefined;
  maxAtomic: bigint;
  expectedAtomic: bigint | undefined;
  chargedAtomic: bigint | undefined;
  countedAtomic: bigint;
  status: ReservationStatus;
  nonce: string | undefined;
  deadline: Date | undefined;
  transaction: string | undefined;
  note: string | undefined;
  /** The seller's signed receipts of this payment, when it sent any. */
  signedReceipts: StoredReceipts | undefined;
  createdAt: Date;
};

/** The seller's signed receipts as kept with the spend row, and what checking them found. */
export type StoredReceipts = {
  status: "verified" | "unconfirmed" | "invalid";
  /** The address that signed them. */
  signer: string | undefined;
  /** The x402 offer-and-receipt receipt and Tollgate's usage receipt, as received. */
  offerReceipt: unknown;
  usageReceipt: unknown;
  /** Why they are not `verified`. */
  problems: string[];
};

/** Why a charge was flagged. */
/**
 * `above_receipts`: a channel's seller states a charged total its own receipts and the vouchers
 * still waiting for one do not add up to (it told the buyer less than it took).
 * `misstated_charge`: a receipt states another charge than the one that moved (an exact payment
 * moves its signed price).
 * `settled_after_refusal`: the seller answered the paid request with a refusal, served nothing, and
 * settled its authorization on chain all the same.
 */
export type DisputeReason =
  | "above_usage"
  | "above_maximum"
  | "usage_above_bound"
  | "above_receipts"
  | "misstated_charge"
  | "settled_after_refusal";

export type RecordDisputeInput = {
  reservationId: string;
  origin: string;
  reason: DisputeReason;
  chargedAtomic: bigint;
  justifiedAtomic?: bigint | undefined;
  maxAtomic: bigint;
  transaction?: string | undefined;
  network?: string | undefined;
  details?: Record<string, unknown>;
};

export type SpendDispute = Omit<RecordDisputeInput, "details"> & {
  id: number;
  status: "open" | "resolved";
  details: Record<string, unknown>;
  createdAt: Date;
};

export type ProviderDaySpend = {
  origin: string;
  /** One row per provider, network and asset: test USDC on a devnet is not real USDC. */
  network: string;
  asset: string;
  /** What counts against the caps: charges, plus maxima still reserved. */
  countedAtomic: bigint;
  chargedAtomic: bigint;
  reservedAtomic: bigint;
  payments: number;
};

export type DaySpend = {
  day: string;
  countedAtomic: bigint;
  providers: ProviderDaySpend[];
};

/** A voucher that never got its receipt, settled from the channel's later state. */
export type ReconciledVoucher = {
  id: string;
  origin: string;
  maxAtomic: bigint;
  chargedAtomic: bigint;
};

/** A batch-settlement channel as the buyer opened it: who, where, and its immutable config. */
export type BuyerChannelInput = {
  channelId: string;
  payer: string;
  /** The provider (URL origin) and the paid URL the channel was opened for. */
  origin: string;
  url: string;
  network: string;
  asset: string;
  payTo: string;
  receiverAuthorizer: string;
  withdrawDelay: number;
  salt: string;
  /** Its place in the pool of channels to this seller (slot n has salt n). */
  slot: number;
  /** The channel's `ChannelConfig`, as signed. */
  config: Record<string, unknown>;
};

/** A channel with what the buyer deposited and the official client's record of it. */
export type BuyerChannel = BuyerChannelInput & {
  depositedAtomic: bigint;
  deposits: number;
  /** The client's view (balance, charged cumulative amount); undefined once fully refunded. */
  context: BatchSettlementClientContext | undefined;
  createdAt: Date;
  updatedAt: Date;
};

/** A provider's measured time to first token for one model: a smoothed figure over its samples. */
export type ProviderLatency = {
  /** The provider's URL origin. */
  origin: string;
  model: string;
  /** Time to first token in milliseconds, smoothed (exponentially weighted moving average). */
  ttftMs: number;
  samples: number;
  updatedAt: Date;
};

/**
 * The buyer's persistent spend: one reservation per signed authorization, moving
 * reserved → settled | released | expired, and one dispute per flagged charge.
 */
export interface SpendStore {
  /**
   * Atomically checks today's caps (UTC) and reserves `maxAtomic`; concurrent callers are
   * serialised, so together they can never pass a cap.
   */
  reserve(input: ReserveSpendInput): Promise<ReserveSpendResult>;
  /** Records the signed authorization's nonce and deadline (or the channel it was a voucher on). */
  authorize(
    id: string,
    authorization: {
      nonce?: string | undefined;
      deadline?: Date | undefined;
      channelId?: string | undefined;
      depositAtomic?: bigint | undefined;
      /** The seller's charged cumulative amount the voucher was signed on (its maximum minus the request's). */
      channelBaseAtomic?: bigint | undefined;
    },
  ): Promise<void>;
  /**
   * Reconciles a reservation to the settled charge (from a receipt); it counts against the caps at
   * most the signed maximum, which is all that can move.
   */
  settle(id: string, settlement: { chargedAtomic: bigint; transaction?: string | undefined }): Promise<void>;
  /**
   * Books a settled reservation at the charge the chain shows moved instead of the one its receipt
   * stated; it counts at most the signed maximum.
   */
  correctCharge(id: string, correction: { chargedAtomic: bigint; note: string }): Promise<void>;
  /**
   * Counts a settled reservation at its maximum again, reserved until its deadline: its receipt's
   * transaction does not show the payment, so the authorization may still move money.
   */
  reopen(id: string, note: string): Promise<void>;
  /** Keeps the seller's signed receipts with the reservation. */
  recordReceipts(id: string, receipts: StoredReceipts): Promise<void>;
  /** Frees a reservation whose authorization can no longer move money. */
  release(id: string, note: string): Promise<void>;
  /** Marks a reservation whose deadline passed unused (checked on chain). */
  expire(id: string, note: string): Promise<void>;
  /** Leaves a reservation counted, with a note (e.g. "no receipt: HTTP 500"). */
  note(id: string, note: string): Promise<void>;
  /** Reservations still counted at their maximum whose deadline is before `before`. */
  lapsed(before: Date): Promise<SpendReservation[]>;
  reservation(id: string): Promise<SpendReservation | undefined>;
  /** The newest reservations first (default 20, at most 500): what was signed, and what it cost. */
  recent(options?: { limit?: number }): Promise<SpendReservation[]>;
  daySpend(day?: string): Promise<DaySpend>;
  recordDispute(input: RecordDisputeInput): Promise<number>;
  disputes(options?: { status?: "open" | "resolved" }): Promise<SpendDispute[]>;
  resolveDispute(id: number): Promise<void>;
  /** Remembers a channel (idempotent: the first record of a channel id stands). */
  recordChannel(input: BuyerChannelInput): Promise<void>;
  /** Adds a deposit the seller confirmed to the channel's deposited total. */
  recordDeposit(channelId: string, amountAtomic: bigint): Promise<void>;
  /** The official client's record of a channel (its `ClientChannelStorage`). */
  channelContext(channelId: string): Promise<BatchSettlementClientContext | undefined>;
  saveChannelContext(channelId: string, context: BatchSettlementClientContext): Promise<void>;
  deleteChannelContext(channelId: string): Promise<void>;
  /** The buyer's channels, newest first; `origin` narrows to one provider. */
  channels(filter?: { origin?: string | undefined; payer?: string | undefined }): Promise<BuyerChannel[]>;
  /** Folds one measured time to first token into the provider's smoothed figure for the model. */
  recordTimeToFirstToken(sample: { origin: string; model: string; ttftMs: number }): Promise<void>;
  /** Every provider and model measured so far. */
  providerLatencies(): Promise<ProviderLatency[]>;
  /**
   * The vouchers signed on a channel, oldest first: each one's status, base and maximum (it signs
   * base + maximum), and for a settled one its charge.
   */
  channelVouchers(channelId: string): Promise<
    Array<{
      id: string;
      status: SpendReservation["status"];
      baseAtomic: bigint;
      maxAtomic: bigint;
      chargedAtomic: bigint | undefined;
    }>
  >;
  /**
   * Settles the channel's vouchers still reserved without a receipt (all but `except`) from the
   * seller's charged cumulative amount `chargedCumulativeAtomic`, known while none of them is in
   * flight: in the order of their bases, each was charged the next base (the last: this amount)
   * minus its own. Amounts that do not add up (a cumulative below a base, a charge above a voucher's
   * maximum) leave the vouchers reserved.
   */
  reconcileChannelVouchers(
    channelId: string,
    chargedCumulativeAtomic: bigint,
    options?: { except?: string | undefined },
  ): Promise<ReconciledVoucher[]>;
  /**
   * Takes slot `slot` of the channel pool `poolKey` for `holder` until `ttlMs` from now, if no one
   * else holds it (a lapsed lease is taken over); true when taken. Atomic across processes.
   */
  leaseChannelSlot(poolKey: string, slot: number, holder: string, ttlMs: number): Promise<boolean>;
  /** Extends `holder`'s lease; false when it lapsed and someone else took the slot. */
  renewChannelSlot(poolKey: string, slot: number, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives `holder`'s lease back. */
  releaseChannelSlot(poolKey: string, slot: number, holder: string): Promise<void>;
  /**
   * Records (or, with `amountAtomic` undefined, forgets) the opening deposit `holder` plans on the
   * slot it leases: it counts for every process sharing the store while that lease is held.
   */
  planOpening(
    lease: { poolKey: string; slot: number; holder: string },
    opening: { payer: string; origin: string; channelId: string; amountAtomic: bigint } | undefined,
  ): Promise<void>;
  /** The opening deposits planned under leases still held, but `holder`'s own; `origin` narrows to one provider. */
  plannedOpenings(filter: {
    payer: string;
    origin?: string | undefined;
    exceptHolder: string;
  }): Promise<Array<{ origin: string; channelId: string; amountAtomic: bigint }>>;
  close(): Promise<void>;
}
