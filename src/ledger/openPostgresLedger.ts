import { type Logger, silentLogger } from "../errors/index.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createPostgresClient } from "./createPostgresClient.js";

export type OpenPostgresLedgerParameters = {
  /** A libpq URL (what operators call `DATABASE_URL`). */
  connectionString: string;
  /** A schema to keep the tables in (created if missing); default: the server's search_path. */
  schema?: string | undefined;
  /** Pool size; default 10. */
  maxConnections?: number | undefined;
  logger?: Logger | undefined;
};

/**
 * Opens the ledger on a shared PostgreSQL, for several gateway replicas; same schema and migrations as the
 * embedded ledger, applied under an advisory lock so replicas may start together.
 */
export async function openPostgresLedger({
  connectionString,
  schema,
  maxConnections,
  logger = silentLogger,
}: OpenPostgresLedgerParameters): Promise<Ledger> {
  const sql = await createPostgresClient({ connectionString, schema, maxConnections, logger });
  return createLedger(sql, { logger });
}
