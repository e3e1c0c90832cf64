import pg from "pg";
import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import { MIGRATION_LOCK_KEY } from "./applyMigrations.js";
import { ledgerError, runStatement } from "./ledgerError.js";
import type { SqlClient, SqlExecutor, SqlRow } from "./SqlClient.js";

export type CreatePostgresClientParameters = {
  /** A libpq URL, e.g. `postgres://tollgate@db:5432/tollgate`. */
  connectionString: string;
  /** A schema to keep the tables in (created if missing); default: the server's search_path. */
  schema?: string | undefined;
  /** Pool size; default 10. */
  maxConnections?: number | undefined;
  logger?: Logger | undefined;
};

/** Opens a node-postgres pool behind the `SqlClient` seam, for several gateway replicas sharing one database. */
export async function createPostgresClient({
  connectionString,
  schema,
  maxConnections = 10,
  logger = silentLogger,
}: CreatePostgresClientParameters): Promise<SqlClient> {
  const searchPath = schema === undefined ? undefined : quoteIdentifier(schema);
  const pool = new pg.Pool({
    connectionString,
    max: maxConnections,
    application_name: "tollgate",
    // A gateway checks debts on every request: waiting forever for a pooled connection is worse than failing.
    connectionTimeoutMillis: 10_000,
    // The search_path rides on the startup packet, so every pooled connection has it from the first query.
    ...(searchPath === undefined ? {} : { options: `-c search_path=${searchPath}` }),
  });
  // An idle connection that dies (server restart) must not crash the process; the next query reconnects.
  pool.on("error", (error) => logger.warn({ err: error }, "ledger: idle PostgreSQL connection failed"));
  const client: SqlClient = {
    ...postgresExecutor(pool),
    async transaction(fn) {
      let connection: pg.PoolClient;
      try {
        connection = await pool.connect();
      } catch (cause) {
        throw ledgerError(cause, "connect");
      }
      // A checked-out connection that dies (a failover, pg_terminate_backend) also emits `error`, which
      // the pool listens for only while the connection is idle: unheard, it would end the process.
      // The statement under way fails with the same error, and this transaction with it.
      const onError = (error: Error) =>
        logger.warn({ err: error }, "ledger: PostgreSQL connection failed during a transaction");
      connection.on("error", onError);
      const release = (error?: Error | true) => {
        connection.off("error", onError);
        connection.release(error);
      };
      try {
        await connection.query("BEGIN");
        const result = await fn(postgresExecutor(connection));
        await connection.query("COMMIT");
        release();
        return result;
      } catch (cause) {
        try {
          await connection.query("ROLLBACK");
          release();
        } catch (rollbackError) {
          logger.warn({ err: rollbackError }, "ledger: ROLLBACK failed; discarding the connection");
          release(rollbackError instanceof Error ? rollbackError : true);
        }
        throw ledgerError(cause, "transaction");
      }
    },
    async close() {
      if (!pool.ended) await pool.end();
    },
  };
  if (searchPath !== undefined) {
    try {
      // Under the migration lock: two processes running CREATE SCHEMA IF NOT EXISTS at once can collide.
      await client.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
        await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${searchPath}`);
      });
    } catch (error) {
      await client.close();
      throw error;
    }
  }
  return client;
}

function postgresExecutor(db: pg.Pool | pg.PoolClient): SqlExecutor {
  return {
    async query<Row extends SqlRow = SqlRow>(sql: string, params: readonly unknown[] = []) {
      const result = await runStatement(sql, () => db.query<Row>(sql, [...params]));
      return result.rows;
    },
    exec: (sql: string) =>
      runStatement(sql, async () => {
        await db.query(sql);
      }),
  };
}

function quoteIdentifier(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: "ledger schema must be a plain lower-case SQL identifier",
      details: { schema: name },
    });
  }
  return `"${name}"`;
}
