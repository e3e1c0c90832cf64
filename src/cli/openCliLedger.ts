import type { Logger } from "../errors/index.js";
import { type Ledger, openLedger, openPostgresLedger } from "../ledger/index.js";

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
  return { ledger: await openLedger({ dataDir, logger }), description: `PGlite ${dataDir}` };
}

/** host:port/db of a PostgreSQL URL, never its password. */
function describeDatabase(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    return `${url.hostname}:${url.port || "5432"}${url.pathname}`;
  } catch {
    return "(connection string)";
  }
}
