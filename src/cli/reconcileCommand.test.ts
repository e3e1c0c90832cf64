import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { readConfigFile } from "./gatewayCommand.js";
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
