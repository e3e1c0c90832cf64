import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createPublicClient, erc20Abi, http, type PublicClient } from "viem";
import { type FaultPoint, faultPoints } from "../../src/cli/faultPoints.js";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { reconcileLedger } from "../../src/gateway/index.js";
import { type Ledger, openPostgresLedger, type PaymentStatus } from "../../src/ledger/index.js";
import {
  authorizationKey,
  decodePaymentRequiredHeader,
  encodePaymentSignatureHeader,
} from "../../src/protocol/index.js";
import { officialBuyer } from "../support/gatewayHarness.js";
import { type MockBackend, mockModelId, startMockBackend } from "../support/mockBackend.js";
import { type GatewayProcess, startGatewayProcess, writeGatewayConfig } from "./support/gatewayProcess.js";
import { databaseUrl, freshSchema, needsPostgres, quick } from "./support/reliabilityEnv.js";

const runsPerPoint = quick ? 4 : 20;
/** Above `timeouts.settleSeconds` (1), as the config must be. */
const settlingGraceSeconds = 1.5;

/** What each crash must end as once a restarted gateway has recovered it. */
const expectedStatus: Record<FaultPoint, PaymentStatus> = {
  after_claim: "failed",
  mid_stream: "failed",
  after_metering: "settled",
  after_broadcast: "settled",
  after_settlement: "settled",
};

const body = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "crash test please" }],
  max_tokens: 64,
  stream: true,
});

describe(`crash: the gateway process SIGKILLed at ${faultPoints.length} points, ${runsPerPoint} runs each`, {
  skip: needsPostgres,
}, () => {
  let devnet: Devnet;
  let backend: MockBackend;
  let ledger: Ledger;
  let client: PublicClient;
  let schema: string;
  let dropSchema: () => Promise<void>;
  let dir: string;
  let configPath: string;
  let startBlock: bigint;
  const running: GatewayProcess[] = [];

  before(async () => {
    devnet = await startDevnet({ buyers: 4 });
    backend = await startMockBackend({ responseTokens: 30, tokensPerSecond: 300 });
    ({ schema, drop: dropSchema } = await freshSchema("crash"));
    dir = await mkdtemp(join(tmpdir(), "tollgate-crash-"));
    // One gateway at a time here, so a restart may take every pending row at once (grace 0); a settling
    // row once it is older than the settle's bound (the restart waits that long).
    configPath = await writeGatewayConfig(dir, {
      devnet,
      backendUrl: backend.url,
      schema,
      timeouts: { settleSeconds: 1 },
      recovery: { graceSeconds: 0, settlingGraceSeconds, intervalSeconds: 3600 },
    });
    ledger = await openPostgresLedger({ connectionString: databaseUrl!, schema, maxConnections: 2 });
    client = createPublicClient({ transport: http(devnet.rpcUrl) }) as PublicClient;
    startBlock = await client.getBlockNumber();
  });
  after(async () => {
    for (const gateway of running) await gateway.stop();
    await ledger?.close();
    await dropSchema?.();
    await backend?.close();
    await devnet?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async (faultPoint: FaultPoint | undefined) => {
    const gateway = await startGatewayProcess(configPath, {
      TOLLGATE_FACILITATOR_KEY: devnet.accounts.facilitator.privateKey,
      DATABASE_URL: databaseUrl!,
      TOLLGATE_FAULT_POINT: faultPoint ?? "",
    });
    running.push(gateway);
    return gateway;
  };

  for (const point of faultPoints) {
    test(`killed ${point}: after restart every payment is final exactly once`, {
      timeout: 600_000,
    }, async (t) => {
      const keys: Array<{ payer: string; nonce: string }> = [];
      let killed = 0;
      let restartMs = 0;
      let gateway = await start(point);
      for (let run = 0; run < runsPerPoint; run++) {
        const buyer = devnet.accounts.buyers[run % devnet.accounts.buyers.length]!;
        const quote = await fetch(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        const decoded = decodePaymentRequiredHeader(quote.headers.get("payment-required"));
        assert.ok(decoded.ok, "the 402 decodes");
        const payload = await officialBuyer(buyer.privateKey, devnet.network).createPaymentPayload(
          decoded.paymentRequired,
        );
        keys.push(authorizationKey(payload as Parameters<typeof authorizationKey>[0]));
        try {
          const response = await fetch(`${gateway.url}/v1/chat/completions`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "payment-signature": encodePaymentSignatureHeader(payload),
            },
            body,
            signal: AbortSignal.timeout(30_000),
          });
          await response.text();
        } catch {
          // The gateway died under the request: that is the point.
        }
        const exit = await Promise.race([gateway.exited, sleep(15_000, undefined, { ref: false })]);
        assert.equal(exit?.signal, "SIGKILL", `run ${run}: the gateway was killed at ${point}`);
        killed++;
        // The next gateway recovers this run's payment before it listens; the last one runs unarmed.
        await sleep(settlingGraceSeconds * 1000, undefined, { ref: false });
        const restartedAt = performance.now();
        gateway = await start(run < runsPerPoint - 1 ? point : undefined);
        restartMs += performance.now() - restartedAt;
      }
      await gateway.stop();

      const counts: Partial<Record<PaymentStatus, number>> = {};
      let chargedAtomic = 0n;
      for (const key of keys) {
        const row = await ledger.payments.findByKey({ network: devnet.network, ...key });
        assert.ok(row, "every paid request has one ledger row");
        counts[row.status] = (counts[row.status] ?? 0) + 1;
        if (row.status === "settled") chargedAtomic += row.chargeAtomic ?? 0n;
      }
      const pending = await ledger.payments.pendingForRecovery();
      t.diagnostic(
        `crash ${point}: ${runsPerPoint} runs, ${killed} killed; after restart ${JSON.stringify(counts)}; pending ${pending.length}; charged ${chargedAtomic} atomic; restart + recovery ${Math.round(restartMs / runsPerPoint)} ms on average`,
      );
      assert.equal(pending.length, 0);
      assert.deepEqual(counts, { [expectedStatus[point]]: runsPerPoint });
    });
  }

  test("ledger totals equal the on-chain transfers to payTo, and reconcile finds no difference", async (t) => {
    const settled = await ledger.payments.listByStatus("settled", { limit: 5000 });
    const ledgerAtomic = settled.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
    const transfers = await client.getLogs({
      address: devnet.contracts.usdc,
      event: erc20Abi.find((item) => item.type === "event" && item.name === "Transfer") as Extract<
        (typeof erc20Abi)[number],
        { type: "event"; name: "Transfer" }
      >,
      args: { to: devnet.accounts.payTo.address },
      fromBlock: startBlock,
    });
    const chainAtomic = transfers.reduce((sum, log) => sum + (log.args.value ?? 0n), 0n);
    const reconciled = await reconcileLedger({
      payments: ledger.payments,
      client,
      network: devnet.network,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      fromBlock: startBlock,
    });
    t.diagnostic(
      `crash totals: ledger ${settled.length} settled = ${ledgerAtomic} atomic; chain ${transfers.length} transfers = ${chainAtomic} atomic; reconcile differences ${reconciled.differences.length}`,
    );
    assert.equal(transfers.length, settled.length, "one transfer per settled payment: nothing settled twice");
    assert.equal(chainAtomic, ledgerAtomic);
    assert.deepEqual(reconciled.differences, []);

    // The same through the command an operator runs.
    const cli = spawnSync(
      process.execPath,
      [
        "bin/tollgate.js",
        "reconcile",
        "--config",
        configPath,
        "--from-block",
        startBlock.toString(),
        "--json",
      ],
      { encoding: "utf8", env: { ...process.env, DATABASE_URL: databaseUrl! }, timeout: 60_000 },
    );
    const printed = JSON.parse(cli.stdout) as {
      settledCount: number;
      transferCount: number;
      differences: unknown[];
    };
    t.diagnostic(
      `tollgate reconcile: exit ${cli.status}; ${printed.settledCount} settled vs ${printed.transferCount} transfers; ${printed.differences.length} differences`,
    );
    assert.equal(cli.status, 0, cli.stderr);
    assert.deepEqual(printed.differences, []);
    assert.equal(printed.settledCount, settled.length);
  });
});
