import assert from "node:assert/strict";
import { test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { createPostgresClient } from "./createPostgresClient.js";
import { ledgerFailureMayPass } from "./ledgerError.js";

// Tests may read the environment; the library never does.
const connectionString = process.env.TOLLGATE_TEST_DATABASE_URL;

test("a transaction whose connection the server ends fails as a ledger error; the process goes on, and so does the pool", {
  skip: connectionString
    ? false
    : "set TOLLGATE_TEST_DATABASE_URL=postgres://user@host:5432/db to run against a real PostgreSQL",
}, async () => {
  const sql = await createPostgresClient({ connectionString: connectionString!, maxConnections: 2 });
  const killer = await createPostgresClient({ connectionString: connectionString! });
  try {
    // The server ends this transaction's backend (a failover, an operator's pg_terminate_backend) while
    // it runs: a connection checked out of the pool then also emits an `error` event.
    await assert.rejects(
      sql.transaction(async (tx) => {
        const [row] = await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
        await killer.query("SELECT pg_terminate_backend($1)", [row!.pid]);
        await tx.query("SELECT 1");
      }),
      (error: unknown) => isTollgateError(error, "TOLLGATE_LEDGER_FAILED"),
    );
    // Given a moment for any event the dead connection emits after its failed query.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const [row] = await sql.query<{ one: number }>("SELECT 1 AS one");
    assert.equal(row?.one, 1);
  } finally {
    await killer.close();
    await sql.close();
  }
});

test("a failure that may pass (the server unreachable, the connection ended) is told from one that will not (a bad statement, a closed ledger)", {
  skip: connectionString
    ? false
    : "set TOLLGATE_TEST_DATABASE_URL=postgres://user@host:5432/db to run against a real PostgreSQL",
}, async () => {
  // Nothing listens on port 1: the connection is refused.
  const unreachable = await createPostgresClient({
    connectionString: "postgres://tollgate@127.0.0.1:1/tollgate",
  });
  try {
    await assert.rejects(unreachable.query("SELECT 1"), (error: unknown) => ledgerFailureMayPass(error));
    await assert.rejects(
      unreachable.transaction(async (tx) => tx.query("SELECT 1")),
      (error: unknown) => ledgerFailureMayPass(error),
    );
  } finally {
    await unreachable.close();
  }
  const sql = await createPostgresClient({ connectionString: connectionString! });
  await assert.rejects(
    sql.query("SELECT * FROM no_such_table_here"),
    (error: unknown) => isTollgateError(error, "TOLLGATE_LEDGER_FAILED") && !ledgerFailureMayPass(error),
  );
  await assert.rejects(
    sql.transaction(async () => {
      throw new TypeError("a bug in the transaction's own code");
    }),
    (error: unknown) => isTollgateError(error, "TOLLGATE_LEDGER_FAILED") && !ledgerFailureMayPass(error),
  );
  await sql.close();
  await assert.rejects(
    sql.query("SELECT 1"),
    (error: unknown) => isTollgateError(error, "TOLLGATE_LEDGER_FAILED") && !ledgerFailureMayPass(error),
  );
});
