import assert from "node:assert/strict";
import { resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { isTollgateError } from "../errors/index.js";
import { parseGatewayConfig } from "../gateway/index.js";
import { describeChannels, describeLedger, describeModelPrices, readConfigFile } from "./gatewayCommand.js";
import { parseReconcileConfig } from "./reconcileCommand.js";

test("reconcile reads a gateway config whose dashboard token is in the environment, without resolving it", async () => {
  const raw = (await readConfigFile(
    fileURLToPath(new URL("../../tollgate.example.yaml", import.meta.url)),
  )) as Record<string, unknown>;
  const withDashboard = {
    ...raw,
    payTo: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    dashboard: { enabled: true, tokenEnv: "TOLLGATE_DASHBOARD_TOKEN" },
  };
  const config = parseReconcileConfig(withDashboard);
  assert.equal(config.network, "eip155:80002");
  assert.ok(config.models.length > 0);
});

test("the gateway's start-up line names where its ledger is, never a database password", async () => {
  const config = parseReconcileConfig({
    ...((await readConfigFile(
      fileURLToPath(new URL("../../tollgate.example.yaml", import.meta.url)),
    )) as Record<string, unknown>),
    payTo: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
  });
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

test("the gateway prints each model's prices as it reads them: a bare number is atomic units, shown in dollars", () => {
  const config = parseGatewayConfig({
    network: "eip155:137",
    payTo: "0x1111111111111111111111111111111111111111",
    facilitator: { url: "http://127.0.0.1:9" },
    models: [
      { id: "meant-dollars", backend: { baseUrl: "http://127.0.0.1:9/v1" }, inputPrice: 3, outputPrice: 15 },
      {
        id: "dollars",
        backend: { baseUrl: "http://127.0.0.1:9/v1" },
        inputPrice: "$0.15",
        outputPrice: "$0.60",
        fixedFee: "$0.001",
        exactPrice: "$0.01",
      },
    ],
  });
  assert.deepEqual(config.models.map(describeModelPrices), [
    "$0.000003 per 1M input tokens, $0.000015 per 1M output tokens",
    "$0.15 per 1M input tokens, $0.60 per 1M output tokens, $0.001 per request, $0.01 per request (exact)",
  ]);
});

test("channel amounts are read as written: dollars, or atomic units; a bare number under a cent is refused with what to write, and the start line shows the effective values", () => {
  const base = {
    network: "eip155:137",
    payTo: "0x1111111111111111111111111111111111111111",
    facilitator: { url: "http://127.0.0.1:9" },
    models: [{ id: "m", backend: { baseUrl: "http://127.0.0.1:9/v1" }, inputPrice: "$1", outputPrice: "$2" }],
  };
  // `minDeposit: 5` meant $5: read as 5 atomic units, every deposit was one request's maximum.
  for (const key of ["minDeposit", "minClaimAtomic"])
    assert.throws(
      () => parseGatewayConfig({ ...base, channels: { [key]: 5 } }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        error.shortMessage ===
          `config key channels.${key}: 5 is read as 5 atomic units ($0.000005): write "$5" (with the quotes) for dollars, or "5" (quoted) if you mean atomic units`,
    );
  const config = parseGatewayConfig({ ...base, channels: { minDeposit: "$5", minClaimAtomic: "5" } });
  assert.equal(config.channels?.minDeposit, 5_000_000n);
  assert.equal(config.channels?.minClaimAtomic, 5n);
  assert.equal(
    describeChannels(config.channels!),
    "minDeposit $5.00 (5000000 atomic), minClaimAtomic $0.000005 (5 atomic), claimIntervalSeconds 300, settleIntervalSeconds 3600, withdrawDelaySeconds 86400",
  );
  const defaults = parseGatewayConfig({ ...base, channels: { minDeposit: 2_000_000 } }).channels!;
  assert.equal(defaults.minDeposit, 2_000_000n, "a bare number of a cent or more is atomic units, as before");
  assert.equal(defaults.minClaimAtomic, 1_000_000n);
});
