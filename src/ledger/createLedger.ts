import { type Logger, silentLogger } from "../errors/index.js";
import { applyMigrations } from "./applyMigrations.js";
import type { ChannelLedger } from "./ChannelLedger.js";
import { createChannelLedger } from "./createChannelLedger.js";
import { createLedgerInsights, type LedgerInsights } from "./createLedgerInsights.js";
import { createPaymentLedger } from "./createPaymentLedger.js";
import { createSettlementLog } from "./createSettlementLog.js";
import type { PaymentLedger } from "./PaymentLedger.js";
import type { SettlementLog } from "./SettlementLog.js";
import type { SqlClient } from "./SqlClient.js";

/** The gateway's payments and the facilitator's settlements, over one database. */
export type Ledger = {
  payments: PaymentLedger;
  settlements: SettlementLog;
  /** The batch-settlement channels the gateway is paid through. */
  channels: ChannelLedger;
  /** Aggregates for metrics and the dashboard. */
  insights: LedgerInsights;
  /** Closes the database underneath. */
  close(): Promise<void>;
};

export type CreateLedgerParameters = {
  logger?: Logger | undefined;
};

/**
 * Migrates the database behind `sql` and returns the ledger over it. The ledger owns `sql` from here on:
 * `close()` closes it, and so does a failed migration.
 */
export async function createLedger(
  sql: SqlClient,
  { logger = silentLogger }: CreateLedgerParameters = {},
): Promise<Ledger> {
  try {
    await applyMigrations(sql, { logger });
  } catch (error) {
    await sql.close().catch((closeError: unknown) => {
      logger.warn({ err: closeError }, "ledger: closing the database after a failed migration failed too");
    });
    throw error;
  }
  return {
    payments: createPaymentLedger(sql, { logger }),
    settlements: createSettlementLog(sql),
    channels: createChannelLedger(sql),
    insights: createLedgerInsights(sql),
    close: () => sql.close(),
  };
}
