import { type Logger, silentLogger } from "../errors/index.js";
import { applyMigrations } from "./applyMigrations.js";
import type { ChannelLedger } from "./ChannelLedger.js";
import { createChannelLedger, type DeferredCharges, writeJournaledCharges } from "./createChannelLedger.js";
import type { ChargeJournal } from "./createChargeJournal.js";
import { createLedgerInsights, type LedgerInsights } from "./createLedgerInsights.js";
import { createPayerQuotas } from "./createPayerQuotas.js";
import { createPaymentLedger } from "./createPaymentLedger.js";
import { createReplicaRegistry } from "./createReplicaRegistry.js";
import { createSettlementLog } from "./createSettlementLog.js";
import type { PayerQuotas } from "./PayerQuotas.js";
import type { PaymentLedger } from "./PaymentLedger.js";
import type { ReplicaRegistry } from "./ReplicaRegistry.js";
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
  /** What each payer had the seller pay for, counted against its limits. */
  quotas: PayerQuotas;
  /** The gateways sharing this database (PostgreSQL replicas) and the terms they take money on. */
  replicas: ReplicaRegistry;
  /** Closes the database underneath. */
  close(): Promise<void>;
};

export type CreateLedgerParameters = {
  logger?: Logger | undefined;
  /**
   * The charge journal of a PGlite ledger on disk (`openLedger` opens it): a channel charge is then
   * answered once journaled, and written to the database right after. The ledger owns it from here on.
   */
  chargeJournal?: ChargeJournal | undefined;
};

/**
 * Migrates the database behind `sql` and returns the ledger over it. The ledger owns `sql` from here on:
 * `close()` closes it, and so does a failed migration.
 */
export async function createLedger(
  sql: SqlClient,
  { logger = silentLogger, chargeJournal }: CreateLedgerParameters = {},
): Promise<Ledger> {
  try {
    await applyMigrations(sql, { logger });
    if (chargeJournal) await writeJournaledCharges(sql, chargeJournal, logger);
  } catch (error) {
    chargeJournal?.close();
    await sql.close().catch((closeError: unknown) => {
      logger.warn({ err: closeError }, "ledger: closing the database after a failed migration failed too");
    });
    throw error;
  }
  // One process alone on its database on disk (PGlite) answers a channel charge once it is journaled.
  const deferCharges: DeferredCharges | undefined =
    sql.serializesStatements && chargeJournal
      ? { journal: chargeJournal, logger, inFlight: new Set() }
      : undefined;
  let closing: Promise<void> | undefined;
  return {
    payments: createPaymentLedger(sql, { logger }),
    settlements: createSettlementLog(sql),
    channels: createChannelLedger(sql, { deferCharges }),
    insights: createLedgerInsights(sql),
    quotas: createPayerQuotas(sql),
    replicas: createReplicaRegistry(sql),
    close: () => {
      closing ??= (async () => {
        // Charges answered and not yet written are written before the database closes; once the journal
        // is closed, a charge is refused (unserved, uncharged).
        while (deferCharges && deferCharges.inFlight.size > 0) await Promise.all(deferCharges.inFlight);
        chargeJournal?.close();
        await sql.close();
      })();
      return closing;
    },
  };
}
