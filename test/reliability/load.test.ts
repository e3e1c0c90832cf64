import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import v8 from "node:v8";
import vm from "node:vm";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import type { TollgateFacilitator } from "../../src/facilitator/index.js";
import { type Gateway, parseGatewayConfig, reconcileLedger, startGateway } from "../../src/gateway/index.js";
import { type Ledger, openLedger, openPostgresLedger } from "../../src/ledger/index.js";
import { parseReceiptEvent } from "../../src/protocol/index.js";
import { officialPayingFetch, testGatewayConfig } from "../support/gatewayHarness.js";
import { type MockBackend, mockModelId, startMockBackend } from "../support/mockBackend.js";
import { databaseUrl, freshSchema, quick, waitFor } from "./support/reliabilityEnv.js";

const seconds = Number(process.env.TOLLGATE_LOAD_SECONDS ?? (quick ? 120 : 600));
const requestsPerSecond = Number(process.env.TOLLGATE_LOAD_RPS ?? 4);
const maxInFlight = 64;

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

const memory = () => {
  gc();
  const { rss, heapUsed } = process.memoryUsage();
  return { rssMb: Math.round(rss / 2 ** 20), heapMb: Math.round(heapUsed / 2 ** 20) };
};

describe("load: a steady rate of paid streaming requests", () => {
  let devnet: Devnet;
  let backend: MockBackend;
  let ledger: Ledger;
  let gateway: Gateway;
  let dropSchema: (() => Promise<void>) | undefined;

  before(async () => {
    devnet = await startDevnet({ buyers: 4 });
    backend = await startMockBackend({ responseTokens: 20, tokensPerSecond: 100 });
    if (databaseUrl) {
      const fresh = await freshSchema("load");
      dropSchema = fresh.drop;
      ledger = await openPostgresLedger({ connectionString: databaseUrl, schema: fresh.schema });
    } else {
      ledger = await openLedger();
    }
    gateway = await startGateway({
      config: parseGatewayConfig(testGatewayConfig({ devnet, backendUrl: backend.url })),
      ledger,
      pollingIntervalMs: 20,
    });
  });
  after(async () => {
    await gateway?.close();
    await ledger?.close();
    await dropSchema?.();
    await backend?.close();
    await devnet?.stop();
  });

  test(`${seconds} s at ${requestsPerSecond} paid streams/s: no unexpected error, memory flat, backlog drained within 60 s`, {
    timeout: (seconds + 300) * 1000,
  }, async (t) => {
    const payers = devnet.accounts.buyers.map((buyer) =>
      officialPayingFetch(buyer.privateKey, devnet.network),
    );
    const body = JSON.stringify({
      model: mockModelId,
      messages: [{ role: "user", content: "a steady stream please" }],
      max_tokens: 64,
      stream: true,
    });
    const errors: string[] = [];
    const latencies: number[] = [];
    let sent = 0;
    let inFlight = 0;
    let overloaded = 0;
    const pending = new Set<Promise<void>>();

    const one = async (index: number) => {
      const startedAt = performance.now();
      try {
        const response = await payers[index % payers.length]!(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(60_000),
        });
        const text = await response.text();
        if (response.status !== 200) throw new Error(`status ${response.status}: ${text.slice(0, 120)}`);
        const line = text.split("\n").find((candidate) => candidate.includes("x402_receipt"));
        const parsed = line ? parseReceiptEvent(line) : undefined;
        if (!parsed?.ok || !parsed.receipt.success)
          throw new Error(`no successful receipt: ${line?.slice(0, 160) ?? "none"}`);
        latencies.push(performance.now() - startedAt);
      } catch (error) {
        errors.push(String(error).slice(0, 200));
      }
    };

    // Warm up (JIT, pools, caches), then take the baseline.
    for (let i = 0; i < 8; i++) await one(i);
    errors.length = 0;
    latencies.length = 0;
    const start = memory();
    const samples: string[] = [];
    const startedAt = Date.now();
    const intervalMs = 1000 / requestsPerSecond;
    let nextAt = performance.now();
    let nextSample = Date.now() + 30_000;
    while (Date.now() - startedAt < seconds * 1000) {
      nextAt += intervalMs;
      const wait = nextAt - performance.now();
      if (wait > 0) await sleep(wait);
      if (inFlight >= maxInFlight) {
        overloaded++;
        continue;
      }
      inFlight++;
      const request = one(sent++).finally(() => {
        inFlight--;
        pending.delete(request);
      });
      pending.add(request);
      if (Date.now() >= nextSample) {
        const { rss, heapUsed } = process.memoryUsage();
        samples.push(
          `${Math.round((Date.now() - startedAt) / 1000)}s ${Math.round(rss / 2 ** 20)}/${Math.round(heapUsed / 2 ** 20)}`,
        );
        nextSample += 30_000;
      }
    }
    const loadEndedAt = performance.now();
    await Promise.all([...pending]);
    const drained = await waitFor(
      async () => (await ledger.payments.pendingForRecovery()).length === 0,
      60_000,
      50,
    );
    const drainMs = Math.round(performance.now() - loadEndedAt);
    const end = memory();
    const sorted = [...latencies].sort((a, b) => a - b);
    const percentile = (p: number) =>
      Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0);
    const reconciled = await reconcileLedger({
      payments: ledger.payments,
      client: (gateway.facilitator as TollgateFacilitator).signer.publicClient,
      network: devnet.network,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
    });
    t.diagnostic(
      `load: ${seconds} s at ${requestsPerSecond}/s (${databaseUrl ? "PostgreSQL" : "PGlite"} ledger) → ${sent} paid streams, ${latencies.length} ok, unexpected errors ${errors.length}, over ${maxInFlight} in flight ${overloaded}; latency p50 ${percentile(0.5)} ms p99 ${percentile(0.99)} ms; memory after GC start RSS ${start.rssMb} MB heap ${start.heapMb} MB → end RSS ${end.rssMb} MB heap ${end.heapMb} MB (samples rss/heap MB: ${samples.join(", ")}); settlement backlog drained ${drained ? `${drainMs} ms` : "NOT"} after the load stopped; reconcile differences ${reconciled.differences.length}`,
    );
    if (errors.length > 0) t.diagnostic(`first errors: ${JSON.stringify(errors.slice(0, 5))}`);
    assert.equal(errors.length, 0);
    assert.equal(overloaded, 0);
    assert.ok(drained && drainMs <= 60_000, `drained in ${drainMs} ms`);
    assert.ok(end.heapMb <= start.heapMb * 1.5 + 20, `heap ${start.heapMb} → ${end.heapMb} MB`);
    assert.deepEqual(reconciled.differences, []);
  });
});
