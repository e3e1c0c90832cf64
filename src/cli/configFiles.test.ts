import assert from "node:assert/strict";
import { resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { describeLedger, readConfigFile } from "./gatewayCommand.js";
import { parseReconcileConfig } from "./reconcileCommand.js";

test("reconcile reads a gateway config whose dashboard token is in the environment, without resolving it", async () => {
  const raw = (await readConfigFile(
    fileURLToPath(new URL("../../tollgate.example.yaml", import.meta.url)),
  )) as Record<string, unknown>;
  const withDashboard = { ...raw, dashboard: { enabled: true, tokenEnv: "TOLLGATE_DASHBOARD_TOKEN" } };
  const config = parseReconcileConfig(withDashboard);
  assert.equal(config.network, "eip155:80002");
  assert.ok(config.models.length > 0);
});

test("the gateway's start-up line names where its ledger is, never a database password", async () => {
  const config = parseReconcileConfig(
    await readConfigFile(fileURLToPath(new URL("../../tollgate.example.yaml", import.meta.url))),
  );
  assert.equal(
    describeLedger({ ...config, ledger: { ...config.ledger, dataDir: ".tollgate/ledger" } }),
    `PGlite ${resolve(".tollgate/ledger")}`,
  );
  const shared = describeLedger({
    ...config,
    ledger: { ...config.ledger, databaseUrl: "postgres://tollgate:secret@db:5433/books", schema: "gw" },
  });
  assert.equal(shared, "PostgreSQL db:5433/books schema gw");
});
