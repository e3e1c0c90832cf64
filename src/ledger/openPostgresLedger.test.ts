import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { createPostgresClient } from "./createPostgresClient.js";
import { ledgerMigrations } from "./ledgerMigrations.js";
import { openPostgresLedger } from "./openPostgresLedger.js";
import { claimInput, type LedgerHarness, openHarness } from "./testkit/ledgerHarness.js";
import { describePayerQuotas } from "./testkit/payerQuotasSuite.js";
import { describePaymentLedger } from "./testkit/paymentLedgerSuite.js";
import { paymentAt } from "./testkit/paymentLifecycle.js";
import { describePaymentTransitions } from "./testkit/paymentTransitionSuite.js";
import { describeSettlementLog } from "./testkit/settlementLogSuite.js";

// Tests may read the environment; the library never does.
const connectionString = process.env.TOLLGATE_TEST_DATABASE_URL;

if (connectionString === undefined || connectionString === "") {
  test("PostgreSQL ledger", {
    skip: "set TOLLGATE_TEST_DATABASE_URL=postgres://user@host:5432/db to run the ledger against a real PostgreSQL",
  }, () => {});
} else {
  const url = connectionString;
  // Every suite gets a schema of its own, dropped at the end: the tests never touch other tables.
  const schemas: string[] = [];
  const freshSchema = () => {
    const schema = `tollgate_test_${process.pid}_${Date.now().toString(36)}_${schemas.length}`;
    schemas.push(schema);
    return schema;
  };
  after(async () => {
    const sql = await createPostgresClient({ connectionString: url });
    try {
      for (const schema of schemas) await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await sql.close();
    }
  });
  let harness: LedgerHarness;
  before(async () => {
    harness = await openHarness(await createPostgresClient({ connectionString: url, schema: freshSchema() }));
  });
  after(() => harness.ledger.close());

  describePaymentLedger("PostgreSQL", () => harness);
  describePaymentTransitions("PostgreSQL", () => harness);
  describeSettlementLog("PostgreSQL", () => harness);
  // A second replica on the harness's schema: both count the same uses.
  let replica: Awaited<ReturnType<typeof openPostgresLedger>> | undefined;
  before(async () => {
    replica = await openPostgresLedger({ connectionString: url, schema: schemas[0] as string });
  });
  after(() => replica?.close());
  describePayerQuotas("PostgreSQL, two replicas", () => ({
    first: harness.ledger.quotas,
    second: (replica as NonNullable<typeof replica>).quotas,
  }));

  describe("PostgreSQL ledger shared by replicas", () => {
    test("applies each migration once when four replicas start at the same moment", async () => {
      const schema = freshSchema();
      const replicas = await Promise.all(
        Array.from({ length: 4 }, () => openPostgresLedger({ connectionString: url, schema })),
      );
      const sql = await createPostgresClient({ connectionString: url, schema });
      try {
        const rows = await sql.query("SELECT version FROM schema_migrations ORDER BY version");
        assert.deepEqual(
          rows.map((row) => row.version),
          ledgerMigrations.map((migration) => migration.version),
        );
      } finally {
        await sql.close();
        await Promise.all(replicas.map((replica) => replica.close()));
      }
    });

    test("refuses a replica whose clock is far from the database's, naming by how much", async () => {
      for (const offsetMs of [-60_000, 60_000])
        await assert.rejects(
          openPostgresLedger({
            connectionString: url,
            schema: freshSchema(),
            now: () => Date.now() + offsetMs,
          }),
          (error: unknown) =>
            isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
            /clock is 60 s (behind|ahead of) the database's/.test(error.shortMessage),
        );
      const close = await openPostgresLedger({
        connectionString: url,
        schema: freshSchema(),
        now: () => Date.now() + 2_000,
      });
      await close.close();
    });

    test("refuses a pool of one connection, on which a replica's channel round would wait for ever", async () => {
      for (const maxConnections of [1, 0, 1.5])
        await assert.rejects(
          openPostgresLedger({ connectionString: url, schema: freshSchema(), maxConnections }),
          (error: unknown) =>
            isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
            error.shortMessage.includes(`maxConnections is ${maxConnections}`) &&
            error.shortMessage.includes("at least 2 connections"),
        );
      const two = await openPostgresLedger({
        connectionString: url,
        schema: freshSchema(),
        maxConnections: 2,
      });
      // Two connections are enough for a round: its turn holds one, its statements take the other.
      const done = await two.channels.exclusively("round", async () => {
        await two.channels.get(`0x${"11".repeat(32)}`);
        return "done";
      });
      assert.equal(done, "done");
      await two.close();
    });

    test("lets exactly one replica claim an authorization and exactly one move its row", async () => {
      const schema = freshSchema();
      const replicas = await Promise.all(
        Array.from({ length: 4 }, () =>
          openPostgresLedger({ connectionString: url, schema, maxConnections: 5 }),
        ),
      );
      try {
        const input = claimInput();
        const claims = await Promise.all(
          replicas.flatMap((replica) => Array.from({ length: 5 }, () => replica.payments.claim(input))),
        );
        assert.equal(claims.filter((claim) => claim.claimed).length, 1);

        const [first] = replicas;
        assert.ok(first !== undefined);
        const payment = await paymentAt(first.payments, "claimed");
        const moves = await Promise.allSettled(
          replicas.map((replica) => replica.payments.markServing(payment.id)),
        );
        assert.equal(moves.filter((move) => move.status === "fulfilled").length, 1);
      } finally {
        await Promise.all(replicas.map((replica) => replica.close()));
      }
    });
  });
}
