import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import { ledgerMigrations, type Migration } from "./ledgerMigrations.js";
import type { SqlClient } from "./SqlClient.js";

/** Advisory lock key serialising migrations across processes: the ASCII bytes of "Tollgate". */
export const MIGRATION_LOCK_KEY = "6084200834447537253";

export type ApplyMigrationsParameters = {
  migrations?: readonly Migration[] | undefined;
  logger?: Logger | undefined;
};

export type ApplyMigrationsReturnType = {
  /** Versions applied by this call, in order; empty when the schema was current. */
  applied: number[];
};

/**
 * Brings the schema up to date in one transaction under a PostgreSQL advisory lock, so that two
 * processes starting at once apply each migration exactly once (the second waits, then finds them done).
 */
export async function applyMigrations(
  sql: SqlClient,
  { migrations = ledgerMigrations, logger = silentLogger }: ApplyMigrationsParameters = {},
): Promise<ApplyMigrationsReturnType> {
  assertOrdered(migrations);
  const applied = await sql.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await tx.exec(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`);
    const rows = await tx.query<{ version: unknown }>("SELECT version FROM schema_migrations");
    const done = new Set(rows.map((row) => Number(row.version)));
    const known = new Set(migrations.map((migration) => migration.version));
    const unknown = [...done].filter((version) => !known.has(version));
    if (unknown.length > 0) {
      // A newer Tollgate migrated this database (rolling deploy); this one keeps working on the old columns.
      logger.warn({ versions: unknown }, "ledger: database has migrations this version does not know");
    }
    const appliedNow: number[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [
        migration.version,
        migration.name,
      ]);
      appliedNow.push(migration.version);
    }
    return appliedNow;
  });
  if (applied.length > 0) logger.info({ versions: applied }, "ledger: migrations applied");
  return { applied };
}

function assertOrdered(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const migration of migrations) {
    if (!Number.isInteger(migration.version) || migration.version <= previous) {
      throw new TollgateError({
        code: "TOLLGATE_LEDGER_FAILED",
        shortMessage: "ledger migrations must have strictly increasing positive integer versions",
        details: { version: migration.version, previous },
      });
    }
    previous = migration.version;
  }
}
