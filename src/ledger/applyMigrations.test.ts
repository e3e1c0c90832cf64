import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { applyMigrations } from "./applyMigrations.js";
import { createPgliteClient } from "./createPgliteClient.js";
import { ledgerMigrations } from "./ledgerMigrations.js";
import type { SqlClient } from "./SqlClient.js";
import { captureLogger } from "./testkit/captureLogger.js";

// One PGlite for the file; each test migrates into a fresh, empty schema of its own.
let sql: SqlClient;
let schemaNumber = 0;
const versions = ledgerMigrations.map((migration) => migration.version);
before(async () => {
  sql = await createPgliteClient();
});
after(() => sql.close());
beforeEach(async () => {
  schemaNumber++;
  await sql.exec(`CREATE SCHEMA m${schemaNumber}; SET search_path TO m${schemaNumber}`);
});

async function recorded(): Promise<unknown[]> {
  const rows = await sql.query("SELECT version, name FROM schema_migrations ORDER BY version");
  return rows.map((row) => [row.version, row.name]);
}

test("applies each migration once and records it in schema_migrations", async () => {
  assert.deepEqual(await applyMigrations(sql), { applied: versions });
  assert.deepEqual(await applyMigrations(sql), { applied: [] });
  assert.deepEqual(await recorded(), [
    [1, "payments"],
    [2, "settlements"],
    [3, "channels"],
    [4, "payments_request_id"],
    [5, "payments_usage_units"],
    [6, "channels_chain"],
    [7, "charge_voucher_function"],
    [8, "channel_shortfall_index"],
    [9, "debt_blocks_payer"],
    [10, "settled_at_index"],
    [11, "payer_quota_uses"],
    [12, "gateway_replicas"],
    [13, "payer_claim_indexes"],
  ]);
  const tables = await sql.query(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1",
  );
  assert.deepEqual(
    tables.map((row) => row.table_name),
    [
      "channel_chains",
      "channels",
      "channels_set_aside",
      "gateway_replicas",
      "payer_quota_uses",
      "payments",
      "schema_migrations",
      "settlements",
    ],
  );
});

test("applies each migration once when two starts race", async () => {
  const results = await Promise.all([applyMigrations(sql), applyMigrations(sql)]);
  assert.deepEqual(
    results.flatMap((result) => result.applied).sort((a, b) => a - b),
    versions,
  );
  assert.equal((await recorded()).length, versions.length);
});

test("applies only the migrations that are new", async () => {
  await applyMigrations(sql, { migrations: ledgerMigrations.slice(0, 1) });
  assert.deepEqual(await applyMigrations(sql), { applied: versions.slice(1) });
});

test("moves the token counts of rows metered before usage units into the usage column", async () => {
  await applyMigrations(sql, { migrations: ledgerMigrations.slice(0, 4) });
  await sql.query(
    `INSERT INTO payments (network, payer, nonce, scheme, model, route, asset, pay_to, max_atomic,
       prompt_tokens, completion_tokens, charge_atomic, status, payload, requirements)
     VALUES ('eip155:31337', '0xab', '1', 'upto', 'm', '/v1/chat/completions', '0x1', '0x2', 100,
       12, 34, 5, 'settled', '{}', '{}'),
       ('eip155:31337', '0xab', '2', 'upto', 'm', '/v1/chat/completions', '0x1', '0x2', 100,
       NULL, NULL, NULL, 'failed', '{}', '{}')`,
  );
  assert.deepEqual(await applyMigrations(sql, { migrations: ledgerMigrations.slice(0, 5) }), {
    applied: [5],
  });
  const rows = await sql.query("SELECT nonce, usage FROM payments ORDER BY nonce");
  const usageOf = (value: unknown) => (typeof value === "string" ? JSON.parse(value) : value);
  assert.deepEqual(usageOf(rows[0]?.usage), { input_tokens: 12, output_tokens: 34 });
  assert.equal(rows[1]?.usage, null);
});

test("rolls back every migration of a run when one fails", async () => {
  const broken = [
    { version: 1, name: "good", sql: "CREATE TABLE good (id int)" },
    { version: 2, name: "broken", sql: "CREATE TABLE broken (id nosuchtype)" },
  ];
  await assert.rejects(applyMigrations(sql, { migrations: broken }), (error: unknown) => {
    assert.ok(isTollgateError(error, "TOLLGATE_LEDGER_FAILED"));
    assert.match(error.shortMessage, /nosuchtype/);
    return true;
  });
  const tables = await sql.query(
    "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema()",
  );
  assert.equal(tables.length, 0, "neither good nor schema_migrations survives");
});

test("refuses a migration list whose versions do not increase", async () => {
  await assert.rejects(
    applyMigrations(sql, {
      migrations: [
        { version: 2, name: "b", sql: "SELECT 1" },
        { version: 1, name: "a", sql: "SELECT 1" },
      ],
    }),
    /strictly increasing/,
  );
});

test("warns, and keeps working, when the database knows a newer migration", async () => {
  await applyMigrations(sql);
  await sql.query("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')");
  const { logger, records } = captureLogger();
  assert.deepEqual(await applyMigrations(sql, { logger }), { applied: [] });
  const warning = records.find((record) => record.level === 40);
  assert.deepEqual(warning?.versions, [99]);
});
