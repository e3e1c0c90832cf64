/** A row as the driver returns it: column name to value. */
export type SqlRow = Record<string, unknown>;

/** What runs SQL: a client, or the transaction handed to `SqlClient.transaction`. */
export interface SqlExecutor {
  /** Runs one parameterised statement (`$1`, `$2`, …) and returns its rows. */
  query<Row extends SqlRow = SqlRow>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs one or more statements without parameters (DDL, migrations). */
  exec(sql: string): Promise<void>;
}

/**
 * The one small seam between the ledger and a PostgreSQL-speaking database.
 * Adapters: `createPgliteClient` (embedded) and `createPostgresClient` (node-postgres pool).
 */
export interface SqlClient extends SqlExecutor {
  /** Statements never run concurrently (one connection, as PGlite): a single statement is then isolated. */
  readonly serializesStatements?: boolean;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** Releases the database (closes PGlite, ends the pool). */
  close(): Promise<void>;
}
