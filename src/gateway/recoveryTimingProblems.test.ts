import assert from "node:assert/strict";
import { test } from "node:test";
import { parseGatewayConfig } from "./gatewayConfig.js";
import { recoveryTimingProblems } from "./recoveryTimingProblems.js";

const base = {
  network: "eip155:137",
  payTo: "0x1111111111111111111111111111111111111111",
  facilitator: { url: "http://127.0.0.1:9" },
  models: [
    {
      id: "m",
      backend: { baseUrl: "http://127.0.0.1:9/v1", maxDurationSeconds: 60 },
      inputPrice: "$1",
      outputPrice: "$2",
    },
  ],
};

test("a recovery grace or confirmAfterSeconds not shorter than maxTimeoutSeconds is named, with the key and what to change", () => {
  // A maxTimeoutSeconds of 100 is valid for a 60 s model; the default settlingGraceSeconds (120) then
  // settles again a payment a stopped gateway left settling only once its authorization has lapsed.
  const short = parseGatewayConfig({ ...base, maxTimeoutSeconds: 100 });
  assert.deepEqual(
    recoveryTimingProblems(short).map((problem) => problem.key),
    ["recovery.settlingGraceSeconds"],
  );
  assert.match(
    recoveryTimingProblems(short)[0]?.message ?? "",
    /^config key recovery\.settlingGraceSeconds: 120 s is not shorter than maxTimeoutSeconds \(100\).*settled again only after its authorization lapsed.*lower recovery\.settlingGraceSeconds/,
  );
  const all = parseGatewayConfig({
    ...base,
    maxTimeoutSeconds: 100,
    recovery: { graceSeconds: 100, settlingGraceSeconds: 200, confirmAfterSeconds: 150 },
  });
  assert.deepEqual(
    recoveryTimingProblems(all).map((problem) => problem.key),
    ["recovery.graceSeconds", "recovery.settlingGraceSeconds", "recovery.confirmAfterSeconds"],
  );
  assert.deepEqual(
    recoveryTimingProblems(parseGatewayConfig(base)),
    [],
    "the defaults fit the default 300 s",
  );
});

test("on a PostgreSQL ledger, an in-process facilitator's settle still waiting for its receipt is named when settlingGraceSeconds does not outlast that wait", () => {
  const key = `0x${"11".repeat(32)}`;
  const shared = (settlingGraceSeconds: number, ledger: Record<string, string>) =>
    parseGatewayConfig({
      ...base,
      facilitator: { privateKey: key },
      ledger,
      timeouts: { settleSeconds: 10 },
      recovery: { settlingGraceSeconds },
    });
  const replicas = recoveryTimingProblems(shared(40, { databaseUrl: "postgres://db/books" }));
  assert.deepEqual(
    replicas.map((problem) => problem.key),
    ["recovery.settlingGraceSeconds"],
  );
  assert.match(replicas[0]?.message ?? "", /waits for a settlement's receipt.*raise it to at least 90/);
  assert.deepEqual(recoveryTimingProblems(shared(40, {})), [], "a PGlite ledger has no sibling");
  assert.deepEqual(recoveryTimingProblems(shared(90, { databaseUrl: "postgres://db/books" })), []);
});

test("a recovery.intervalSeconds that, after the grace, reaches a stopped replica's payment only once its authorization lapsed is named", () => {
  // Each grace is within the 300 s authorization; a pass every 600 s finds a payment left metered up to 660 s after.
  const daily = parseGatewayConfig({ ...base, recovery: { intervalSeconds: 600 } });
  assert.deepEqual(
    recoveryTimingProblems(daily).map((problem) => problem.key),
    ["recovery.intervalSeconds"],
  );
  assert.match(
    recoveryTimingProblems(daily)[0]?.message ?? "",
    /^config key recovery\.intervalSeconds: a recovery pass every 600 s after recovery\.graceSeconds \(60\) and recovery\.settlingGraceSeconds \(120\) and recovery\.confirmAfterSeconds \(30\) acts up to 720 s later, not within maxTimeoutSeconds \(300\).*left settling would be settled again only after its authorization lapsed.*lower recovery\.intervalSeconds below 180/,
  );
  // A pass every 200 s comes in time after the 60 s grace, not after the 120 s settling grace.
  const settling = recoveryTimingProblems(
    parseGatewayConfig({ ...base, recovery: { intervalSeconds: 200 } }),
  );
  assert.deepEqual(
    settling.map((problem) => problem.key),
    ["recovery.intervalSeconds"],
  );
  assert.match(
    settling[0]?.message ?? "",
    /after recovery\.settlingGraceSeconds \(120\) acts up to 320 s later.*below 180/,
  );
  assert.deepEqual(
    recoveryTimingProblems(parseGatewayConfig({ ...base, recovery: { intervalSeconds: 150 } })),
    [],
  );
});
