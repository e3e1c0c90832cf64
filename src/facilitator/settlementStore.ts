import type { SettleResponse } from "@x402/core/types";
import { type SettlementKey, settlementKeyString } from "./settlementKey.js";

/** What is known of one authorization's settlement. */
export type SettlementRecord =
  | { status: "in_flight" }
  | { status: "succeeded"; result: SettleResponse }
  | { status: "failed"; result: SettleResponse };

/**
 * The facilitator's settlement log: each authorization is settled at most once. A key whose
 * last attempt failed without moving funds may be tried again (a debt is paid that way).
 */
export type SettlementStore = {
  /** Marks `key` in flight, unless a record says it is in flight or already succeeded. */
  begin(
    key: SettlementKey,
    amountAtomic: bigint,
  ): Promise<{ started: true } | { started: false; existing: SettlementRecord }>;
  succeed(key: SettlementKey, result: SettleResponse): Promise<void>;
  fail(key: SettlementKey, result: SettleResponse): Promise<void>;
  /**
   * Puts a success whose `transaction` the chain no longer holds (a reorganised block, the nonce
   * unspent) back in flight, to be settled again; false when the record is not that success.
   */
  reopen(key: SettlementKey, transaction: string): Promise<boolean>;
};

/** How many succeeded settlements the memory store remembers; older ones are left to the chain. */
export const MEMORY_SETTLEMENTS_KEPT = 100_000;

/**
 * A settlement log in memory, for one process. It stays bounded whatever clients send: a failed
 * attempt leaves no record (it may be tried again anyway), and only the latest `kept` successes
 * are remembered; an older authorization's spent nonce then refuses it on chain.
 */
export function createMemorySettlementStore({ kept = MEMORY_SETTLEMENTS_KEPT } = {}): SettlementStore {
  const inFlight = new Set<string>();
  const succeeded = new Map<string, SettlementRecord>();
  return {
    async begin(key) {
      const id = settlementKeyString(key);
      if (inFlight.has(id)) return { started: false, existing: { status: "in_flight" } };
      const existing = succeeded.get(id);
      if (existing) return { started: false, existing };
      inFlight.add(id);
      return { started: true };
    },
    async succeed(key, result) {
      const id = settlementKeyString(key);
      inFlight.delete(id);
      succeeded.set(id, { status: "succeeded", result });
      if (succeeded.size > kept) succeeded.delete(succeeded.keys().next().value as string);
    },
    async fail(key) {
      inFlight.delete(settlementKeyString(key));
    },
    async reopen(key, transaction) {
      const id = settlementKeyString(key);
      const existing = succeeded.get(id);
      if (existing?.status !== "succeeded" || existing.result.transaction !== transaction) return false;
      succeeded.delete(id);
      inFlight.add(id);
      return true;
    },
  };
}
