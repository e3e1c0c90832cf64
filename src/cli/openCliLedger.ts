import { type Logger, TollgateError } from "../errors/index.js";
import { type Ledger, openLedger, openPostgresLedger } from "../ledger/index.js";
import { ledgerHolder } from "./ledgerAccess.js";

export type OpenCliLedgerParameters = {
  /** PGlite directory, used when no PostgreSQL URL is set. */
  dataDir: string;
  /** The config's `ledger.databaseUrlEnv`, naming the variable that holds the PostgreSQL URL. */
  databaseUrlEnv?: string | undefined;
  schema?: string | undefined;
  logger?: Logger | undefined;
};

/** Where a command's ledger lives, said without the password. */
export type CliLedger = { ledger: Ledger; description: string };

/**
 * Opens the ledger a command reads: PostgreSQL when `DATABASE_URL` (or the variable the config names) is set,
 * otherwise PGlite in `dataDir`. Only the CLI reads the environment.
 */
export async function openCliLedger({
  dataDir,
  databaseUrlEnv,
  schema,
  logger,
}: OpenCliLedgerParameters): Promise<CliLedger> {
  const connectionString = process.env[databaseUrlEnv ?? "DATABASE_URL"];
  if (connectionString) {
    return {
      ledger: await openPostgresLedger({ connectionString, schema, logger }),
      description: `PostgreSQL ${describeDatabase(connectionString)}`,
    };
  }
  // PGlite is one process's database: a data dir a running gateway holds is not opened a second time.
  const holder = await ledgerHolder(dataDir);
  if (holder && holder.pid !== process.pid) {
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `the ledger in ${dataDir} is held by a running gateway (process ${holder.pid}); stop it first, or keep the ledger in PostgreSQL (DATABASE_URL) to read it while gateways run`,
      details: { dataDir, pid: holder.pid },
    });
  }
  return { ledger: await openLedger({ dataDir, logger }), description: `PGlite ${dataDir}` };
}

/** host:port/db of a PostgreSQL URL, never its password. */
export function describeDatabase(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.hostname}:${url.port || "5432"}${url.pathname}`;
  } catch {
    return "(connection string)";
  }
}
