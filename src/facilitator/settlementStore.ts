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
};

/** A settlement log in memory, for one process. */
export function createMemorySettlementStore(): SettlementStore {
  const records = new Map<string, SettlementRecord>();
  return {
    async begin(key) {
      const id = settlementKeyString(key);
      const existing = records.get(id);
      if (existing && existing.status !== "failed") return { started: false, existing };
      records.set(id, { status: "in_flight" });
      return { started: true };
    },
    async succeed(key, result) {
      records.set(settlementKeyString(key), { status: "succeeded", result });
    },
    async fail(key, result) {
      records.set(settlementKeyString(key), { status: "failed", result });
    },
  };
}
