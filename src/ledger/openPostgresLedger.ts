import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createPostgresClient } from "./createPostgresClient.js";

export type OpenPostgresLedgerParameters = {
  /** A libpq URL (what operators call `DATABASE_URL`). */
  connectionString: string;
  /** A schema to keep the tables in (created if missing); default: the server's search_path. */
  schema?: string | undefined;
  /** Pool size; default 10, at least 2 (a channel round holds one connection for its turn, its statements take others). */
  maxConnections?: number | undefined;
  logger?: Logger | undefined;
  /** This process's clock (ms since the epoch), as compared with the database's; default `Date.now`. */
  now?: () => number;
};

/** How far this process's clock may be from the database's. */
export const MAX_CLOCK_SKEW_MS = 10_000;

/**
 * Opens the ledger on a shared PostgreSQL, for several gateway replicas; same schema and migrations as the
 * embedded ledger, applied under an advisory lock so replicas may start together.
 */
export async function openPostgresLedger({
  connectionString,
  schema,
  maxConnections,
  logger = silentLogger,
  now = Date.now,
}: OpenPostgresLedgerParameters): Promise<Ledger> {
  if (maxConnections !== undefined && !(Number.isInteger(maxConnections) && maxConnections >= 2))
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `maxConnections is ${maxConnections}: the PostgreSQL ledger needs a pool of at least 2 connections (a replica's claim or settle round holds one for its turn while its statements take another); give 2 or more, or leave it out (10)`,
    });
  const sql = await createPostgresClient({ connectionString, schema, maxConnections, logger });
  // Replicas compare times each of them wrote (a channel reservation's expiry, a refund's lease): a
  // clock far from the others' would take a live reservation for an expired one.
  try {
    const sent = now();
    const [row] = await sql.query<{ ms: unknown }>(
      "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms",
    );
    const skewMs = Number(row?.ms) - (sent + now()) / 2;
    if (Math.abs(skewMs) > MAX_CLOCK_SKEW_MS)
      throw new TollgateError({
        code: "TOLLGATE_CONFIG_INVALID",
        shortMessage: `this machine's clock is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? "behind" : "ahead of"} the database's: replicas compare the times they write (channel reservations, refund leases), so it must be within ${MAX_CLOCK_SKEW_MS / 1000} s; synchronize it (NTP)`,
      });
  } catch (error) {
    await sql.close().catch(() => undefined);
    throw error;
  }
  return createLedger(sql, { logger });
}
