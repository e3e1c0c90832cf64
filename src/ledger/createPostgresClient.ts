import pg from "pg";
import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import { MIGRATION_LOCK_KEY } from "./applyMigrations.js";
import { ledgerError, PASSING_SQL_STATE } from "./ledgerError.js";
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
  /** A driver failure as TOLLGATE_LEDGER_FAILED, marked `mayPass` when it is the connection's or the server's passing state. */
  const failure = (cause: unknown, sql: string) => {
    const error = ledgerError(cause, sql);
    const passing =
      cause instanceof pg.DatabaseError
        ? typeof cause.code === "string" && PASSING_SQL_STATE.test(cause.code)
        : // Anything else the driver throws is the connection's (refused, reset, timed out), but a bad
          // parameter's TypeError or RangeError.
          cause instanceof Error && !(cause instanceof TypeError) && !(cause instanceof RangeError);
    // A closed ledger does not come back.
    if (passing && !pool.ended) error.details.mayPass = true;
    return error;
  };
  const postgresExecutor = (db: pg.Pool | pg.PoolClient): SqlExecutor => ({
    async query<Row extends SqlRow = SqlRow>(sql: string, params: readonly unknown[] = []) {
      try {
        return (await db.query<Row>(sql, [...params])).rows;
      } catch (cause) {
        throw failure(cause, sql);
      }
    },
    async exec(sql: string) {
      try {
        await db.query(sql);
      } catch (cause) {
        throw failure(cause, sql);
      }
    },
  });
  const client: SqlClient = {
    ...postgresExecutor(pool),
    async transaction(fn) {
      let connection: pg.PoolClient;
      try {
        connection = await pool.connect();
      } catch (cause) {
        throw failure(cause, "connect");
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
      /** BEGIN or COMMIT: their failure is the connection's or the server's; `fn`'s own are its. */
      const bracket = async (sql: string) => {
        try {
          await connection.query(sql);
        } catch (cause) {
          throw failure(cause, sql);
        }
      };
      try {
        await bracket("BEGIN");
        const result = await fn(postgresExecutor(connection));
        await bracket("COMMIT");
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
