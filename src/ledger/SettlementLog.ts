import type { AuthorizationKeyInput } from "./normalizeAuthorizationKey.js";

/** `in_flight` while the settle transaction is being sent; then `succeeded` or `failed`. */
export type SettlementStatus = "in_flight" | "succeeded" | "failed";

/** The facilitator's record of settling one authorization. */
export type SettlementRecord = {
  id: number;
  network: string;
  payer: string;
  nonce: string;
  status: SettlementStatus;
  /** The amount asked to settle, in atomic units. */
  amountAtomic: bigint;
  /** The settlement transaction; null while in flight, on failure, and for a zero amount. */
  transaction: string | null;
  /** The settle response that was returned (x402 `SettleResponse`), null while in flight. */
  result: unknown;
  createdAt: Date;
  updatedAt: Date;
  completedAt: Date | null;
};

/** Either this caller owns the settlement, or it finds the one that already began. */
export type BeginSettlementResult =
  | { started: true; settlement: SettlementRecord }
  | { started: false; existing: SettlementRecord };

export type SettlementSuccess = {
  /** The transaction hash; empty for a zero amount (no transaction is sent). */
  transaction: string;
  /** JSON-serialisable settle response to hand back to every later caller. */
  result: unknown;
};

export type SettlementFailure = {
  /** JSON-serialisable settle response (with its `errorReason`). */
  result: unknown;
};

export type InFlightSettlementsOptions = {
  /** Only settlements begun before this instant (older than any settle still legitimately running). */
  startedBefore?: Date | undefined;
};

/**
 * The facilitator's idempotency log, keyed by (network, payer, nonce): settling the same authorization twice
 * returns the first result and never sends a second transaction.
 * @example
 * const begun = await settlements.begin(key, amountAtomic);
 * if (!begun.started) return begun.existing.result; // or wait / reconcile when still in_flight
 * const hash = await sendSettleTransaction();
 * await settlements.complete(key, { transaction: hash, result });
 */
export interface SettlementLog {
  /** Atomically records `in_flight` for a new key; a second call, even concurrent, gets the first record. */
  begin(key: AuthorizationKeyInput, amountAtomic: bigint): Promise<BeginSettlementResult>;
  /** in_flight → succeeded. */
  complete(key: AuthorizationKeyInput, success: SettlementSuccess): Promise<SettlementRecord>;
  /** in_flight → failed. */
  fail(key: AuthorizationKeyInput, failure: SettlementFailure): Promise<SettlementRecord>;
  /** failed → in_flight, for a failure known to have left the nonce unspent; otherwise returns the record. */
  retry(key: AuthorizationKeyInput, amountAtomic: bigint): Promise<BeginSettlementResult>;
  /**
   * succeeded with `transaction` → in_flight, when the chain no longer holds that transaction and the
   * nonce is unspent (a reorganised block): it is settled again. False when the record is not that success.
   */
  reopen(key: AuthorizationKeyInput, transaction: string): Promise<boolean>;
  get(key: AuthorizationKeyInput): Promise<SettlementRecord | undefined>;
  /** Settlements still in flight, oldest first: after a crash they must be reconciled from the chain. */
  inFlight(options?: InFlightSettlementsOptions): Promise<SettlementRecord[]>;
}
