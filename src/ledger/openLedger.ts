import { resolve } from "node:path";
import { type Logger, silentLogger } from "../errors/index.js";
import { chargeJournalPath, openChargeJournal } from "./createChargeJournal.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createPgliteClient } from "./createPgliteClient.js";
import { lockFile } from "./lockFile.js";

export type OpenLedgerParameters = {
  /** A directory to persist the database in; undefined or `"memory://"` keeps it in memory. */
  dataDir?: string | undefined;
  logger?: Logger | undefined;
  /** How long to wait for another process holding the data dir to let go. Default 15 s. */
  lockTimeoutMs?: number | undefined;
};

/** The lock beside a PGlite data dir, held by the one process that has it open. */
export function ledgerLockPath(dataDir: string): string {
  return `${resolve(dataDir)}.lock`;
}

/**
 * Opens the embedded ledger (PGlite: PostgreSQL in WASM, one process) and brings its schema up to date.
 * @example
 * const ledger = await openLedger({ dataDir: ".tollgate/ledger", logger });
 * const claim = await ledger.payments.claim({ network, payer, nonce, ... });
 */
export async function openLedger({
  dataDir,
  logger = silentLogger,
  lockTimeoutMs,
}: OpenLedgerParameters = {}): Promise<Ledger> {
  // A plain path is a directory on disk; `memory://` and PGlite's other schemes are not.
  const onDisk = dataDir !== undefined && !dataDir.includes("://");
  // PGlite is one process's database: a second process opening the same directory (a gateway, a
  // `tollgate channels` reading it) would lose the other's writes when it closes. One at a time.
  const unlock = onDisk
    ? await lockFile(ledgerLockPath(dataDir), {
        timeoutMs: lockTimeoutMs,
        refusal: (holder) =>
          `the ledger in ${dataDir} is open in ${holder}: a gateway, or a tollgate command reading it; stop it first, or keep the ledger in PostgreSQL (DATABASE_URL) to share it`,
      })
    : undefined;
  try {
    const sql = await createPgliteClient({ dataDir });
    let chargeJournal: ReturnType<typeof openChargeJournal> | undefined;
    try {
      chargeJournal = onDisk ? openChargeJournal(chargeJournalPath(dataDir)) : undefined;
    } catch (error) {
      await sql.close();
      throw error;
    }
    const ledger = await createLedger(sql, { logger, chargeJournal });
    if (!unlock) return ledger;
    let closing: Promise<void> | undefined;
    return {
      ...ledger,
      close: () => {
        closing ??= ledger.close().finally(unlock);
        return closing;
      },
    };
  } catch (error) {
    await unlock?.();
    throw error;
  }
}
