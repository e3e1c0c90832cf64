import { type Logger, silentLogger } from "../errors/index.js";
import { chargeJournalPath, openChargeJournal } from "./createChargeJournal.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createPgliteClient } from "./createPgliteClient.js";

export type OpenLedgerParameters = {
  /** A directory to persist the database in; undefined or `"memory://"` keeps it in memory. */
  dataDir?: string | undefined;
  logger?: Logger | undefined;
};

/**
 * Opens the embedded ledger (PGlite: PostgreSQL in WASM, one process) and brings its schema up to date.
 * @example
 * const ledger = await openLedger({ dataDir: ".tollgate/ledger", logger });
 * const claim = await ledger.payments.claim({ network, payer, nonce, ... });
 */
export async function openLedger({
  dataDir,
  logger = silentLogger,
}: OpenLedgerParameters = {}): Promise<Ledger> {
  const sql = await createPgliteClient({ dataDir });
  // A plain path is a directory on disk; `memory://` and PGlite's other schemes are not.
  const onDisk = dataDir !== undefined && !dataDir.includes("://");
  let chargeJournal: ReturnType<typeof openChargeJournal> | undefined;
  try {
    chargeJournal = onDisk ? openChargeJournal(chargeJournalPath(dataDir)) : undefined;
  } catch (error) {
    await sql.close();
    throw error;
  }
  return createLedger(sql, { logger, chargeJournal });
}
