import type { SettleResponse } from "@x402/core/types";
import type { SettlementRecord as LoggedSettlement, SettlementLog } from "../ledger/index.js";
import type { SettlementRecord, SettlementStore } from "./settlementStore.js";

/**
 * A settlement store on the ledger's persistent settlement log (PGlite or PostgreSQL), so
 * idempotency holds across restarts and across replicas sharing one database.
 */
export function settlementStoreFromLog(log: SettlementLog): SettlementStore {
  const toRecord = (logged: LoggedSettlement): SettlementRecord => {
    if (logged.status === "in_flight") return { status: "in_flight" };
    return { status: logged.status, result: logged.result as SettleResponse };
  };
  return {
    async begin(key, amountAtomic) {
      const begun = await log.begin(key, amountAtomic);
      if (begun.started) return { started: true };
      if (begun.existing.status !== "failed") return { started: false, existing: toRecord(begun.existing) };
      // The last attempt failed without a transfer: this one may try again.
      const retried = await log.retry(key, amountAtomic);
      return retried.started ? { started: true } : { started: false, existing: toRecord(retried.existing) };
    },
    async succeed(key, result) {
      await log.complete(key, { transaction: result.transaction, result });
    },
    async fail(key, result) {
      await log.fail(key, { result });
    },
    reopen: (key, transaction) => log.reopen(key, transaction),
  };
}
