import { PGlite, type Transaction } from "@electric-sql/pglite";
import { ledgerError, runStatement } from "./ledgerError.js";
import type { SqlClient, SqlExecutor, SqlRow } from "./SqlClient.js";

export type CreatePgliteClientParameters = {
  /** A directory to persist into; undefined or `"memory://"` keeps the database in memory. */
  dataDir?: string | undefined;
};

/**
 * Opens an embedded PostgreSQL (PGlite, compiled to WASM) behind the `SqlClient` seam.
 * PGlite has one connection: concurrent calls queue, and a transaction holds the queue.
 */
export async function createPgliteClient({ dataDir }: CreatePgliteClientParameters = {}): Promise<SqlClient> {
  let db: PGlite;
  try {
    db = await PGlite.create(dataDir === undefined || dataDir === "memory://" ? undefined : dataDir);
  } catch (cause) {
    throw ledgerError(cause, `open PGlite at ${dataDir ?? "memory://"}`);
  }
  return {
    ...pgliteExecutor(db),
    serializesStatements: true,
    async transaction(fn) {
      try {
        return await db.transaction((tx) => fn(pgliteExecutor(tx)));
      } catch (cause) {
        throw ledgerError(cause, "transaction");
      }
    },
    async close() {
      if (!db.closed) await db.close();
    },
  };
}

function pgliteExecutor(db: PGlite | Transaction): SqlExecutor {
  return {
    async query<Row extends SqlRow = SqlRow>(sql: string, params: readonly unknown[] = []) {
      const result = await runStatement(sql, () => db.query<Row>(sql, [...params]));
      return result.rows;
    },
    exec: (sql: string) =>
      runStatement(sql, async () => {
        await db.exec(sql);
      }),
  };
}
