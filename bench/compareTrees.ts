// Before/after of a change, side by side in one process: `npx tsx bench/compareTrees.ts DIR_A DIR_B`.
// DIR_A and DIR_B are two checkouts (e.g. `git worktree add /tmp/before HEAD~1`). Each gets its own
// gateway (own facilitator key, own on-disk PGlite ledger) on one devnet and one backend; paid requests
// alternate between them (ABAB…, order flipped each pair), and their facilitators' verify throughput is
// measured in alternating blocks. On a noisy machine only such interleaved ratios mean anything.
// With `--channels`, both gateways offer payment channels and the buyer pays by channel (the official
// batch-settlement client; one channel per gateway, opened in the warm-up). With `--receipts`, both
// gateways sign every settled answer's receipts, as `tollgate dev` does.
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { pino } from "pino";
import { startDevnet } from "../src/devnet/index.js";
import { startMockBackend } from "../test/support/mockBackend.js";
import { paymentRequiredFor, uptoRequirements } from "./facilitatorBench.js";
import {
  createBenchBuyer,
  createChannelBenchBuyer,
  type RequestTiming,
  sendRequest,
} from "./payingClient.js";
import { benchChannels } from "./settings.js";
import { summarize } from "./stats.js";

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    requests: { type: "string", default: "150" },
    stream: { type: "boolean", default: false },
    channels: { type: "boolean", default: false },
    receipts: { type: "boolean", default: false },
  },
});
if (positionals.length !== 2) {
  console.error(
    "usage: npx tsx bench/compareTrees.ts DIR_A DIR_B [--requests N] [--stream] [--channels] [--receipts]",
  );
  process.exit(2);
}
const roots = positionals.map((dir) => resolve(dir)) as [string, string];
const requests = Number(flags.requests);

type Tree = {
  name: "A" | "B";
  root: string;
  url: string;
  facilitator: {
    address: string;
    verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<{ isValid: boolean }>;
  };
  timings: RequestTiming[];
  close(): Promise<void>;
};

const devnet = await startDevnet({ buyers: 3 });
const backend = await startMockBackend({
  tokensPerSecond: flags.stream ? 50 : 0,
  responseTokens: flags.stream ? 10 : 16,
});
const workDir = await mkdtemp(join(tmpdir(), "tollgate-compare-"));

async function startTree(name: "A" | "B", root: string): Promise<Tree> {
  const gatewayModule = await import(join(root, "src/gateway/index.ts"));
  const ledgerModule = await import(join(root, "src/ledger/index.ts"));
  const facilitatorModule = await import(join(root, "src/facilitator/index.ts"));
  const key = await devnet.createBuyer(0n);
  const dataDir = join(workDir, name, "ledger");
  await mkdir(dataDir, { recursive: true });
  const logger = pino(
    { level: "info", base: undefined },
    pino.destination({ dest: join(workDir, `${name}.log`), sync: true, mkdir: true }),
  );
  const ledger = await ledgerModule.openLedger({ dataDir, logger });
  const config = gatewayModule.parseGatewayConfig({
    network: devnet.network,
    rpcUrl: devnet.rpcUrl,
    asset: devnet.contracts.usdc,
    assetDomain: { name: "USD Coin", version: "2" },
    payTo: devnet.accounts.payTo.address,
    facilitator: { privateKey: key.privateKey },
    server: { host: "127.0.0.1", port: 0 },
    ledger: { dataDir },
    ...(flags.receipts ? { receipts: { signingKey: devnet.accounts.payTo.privateKey } } : {}),
    ...(flags.channels
      ? {
          channels: {
            claimIntervalSeconds: benchChannels.claimIntervalSeconds,
            settleIntervalSeconds: benchChannels.settleIntervalSeconds,
            withdrawDelaySeconds: benchChannels.withdrawDelaySeconds,
            minDeposit: benchChannels.minDepositAtomic.toString(),
          },
        }
      : {}),
    models: [
      {
        id: "m",
        backend: { baseUrl: backend.url },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 256,
      },
    ],
  });
  const gateway = await gatewayModule.startGateway({ config, ledger, logger, pollingIntervalMs: 20 });
  // A separate facilitator (own key) for the verify blocks, as the gateway's code would build it.
  const verifierKey = await devnet.createBuyer(0n);
  const facilitator = facilitatorModule.createFacilitator({
    rpcUrl: devnet.rpcUrl,
    privateKey: verifierKey.privateKey,
    network: devnet.network,
    pollingIntervalMs: 20,
  });
  return {
    name,
    root,
    url: `${gateway.url}/v1`,
    facilitator,
    timings: [],
    async close() {
      await gateway.close();
      await ledger.close();
    },
  };
}

const started: Tree[] = [];
const buyer = createBenchBuyer(devnet.accounts.buyers[0]!.privateKey, devnet.network);
const payingBuyer = flags.channels
  ? createChannelBenchBuyer(devnet.accounts.buyers[0]!.privateKey, devnet.network, devnet.rpcUrl)
  : buyer;
try {
  started.push(await startTree("A", roots[0]));
  started.push(await startTree("B", roots[1]));
  const trees = [started[0]!, started[1]!] as const;
  for (let i = 0; i < 10; i++)
    for (const tree of trees)
      await sendRequest({ baseUrl: tree.url, model: "m", stream: flags.stream, buyer: payingBuyer });
  let failures = 0;
  for (let i = 0; i < requests; i++) {
    for (const tree of i % 2 === 0 ? trees : [trees[1], trees[0]]) {
      const timing = await sendRequest({
        baseUrl: tree.url,
        model: "m",
        stream: flags.stream,
        buyer: payingBuyer,
      });
      if (timing.ok) tree.timings.push(timing);
      else failures++;
    }
  }

  // Verify throughput: 16 in flight, alternating blocks of 200.
  const verifyStats = new Map<Tree, { cpuSeconds: number; wallSeconds: number; count: number }>();
  const signed = new Map<Tree, { requirements: PaymentRequirements; payloads: PaymentPayload[] }>();
  for (const tree of trees) {
    const requirements = uptoRequirements(devnet, tree.facilitator.address);
    const required = paymentRequiredFor(requirements);
    const payloads: PaymentPayload[] = [];
    for (let i = 0; i < 100; i++) payloads.push(await buyer.client.createPaymentPayload(required));
    await tree.facilitator.verify(payloads[0]!, requirements);
    signed.set(tree, { requirements, payloads });
    verifyStats.set(tree, { cpuSeconds: 0, wallSeconds: 0, count: 0 });
  }
  for (let round = 0; round < 6; round++) {
    for (const tree of round % 2 === 0 ? trees : [trees[1], trees[0]]) {
      const { requirements, payloads } = signed.get(tree)!;
      const stats = verifyStats.get(tree)!;
      const cpuBefore = process.cpuUsage();
      const startedAt = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < 200) {
            const result = await tree.facilitator.verify(payloads[next++ % payloads.length]!, requirements);
            if (!result.isValid) throw new Error(`${tree.name}: a valid payload did not verify`);
          }
        }),
      );
      const cpu = process.cpuUsage(cpuBefore);
      stats.cpuSeconds += (cpu.user + cpu.system) / 1e6;
      stats.wallSeconds += (performance.now() - startedAt) / 1000;
      stats.count += 200;
    }
  }

  const line = (tree: Tree) => {
    const of = (pick: (timing: RequestTiming) => number) => summarize(tree.timings.map(pick));
    const ttft = of((t) => t.paidTtftMs);
    const paid = of((t) => t.paidTotalMs);
    const flow = of((t) => t.totalMs);
    const verify = verifyStats.get(tree)!;
    return {
      tree: `${tree.name} ${tree.root}`,
      paid_ttft_ms_p50: ttft.p50,
      paid_total_ms_p50: paid.p50,
      paid_total_ms_mean: paid.mean,
      flow_total_ms_p50: flow.p50,
      verify_per_cpu_s: verify.count / verify.cpuSeconds,
      verify_per_s: verify.count / verify.wallSeconds,
    };
  };
  const [a, b] = [line(trees[0]), line(trees[1])];
  console.log(
    JSON.stringify({ stream: flags.stream, channels: flags.channels, requests, failures, a, b }, null, 2),
  );
  const ratio = (x: number, y: number) => (y / x).toFixed(3);
  console.log(
    `B/A: paid ttft p50 ${ratio(a.paid_ttft_ms_p50, b.paid_ttft_ms_p50)}, paid total p50 ${ratio(a.paid_total_ms_p50, b.paid_total_ms_p50)}, ` +
      `flow total p50 ${ratio(a.flow_total_ms_p50, b.flow_total_ms_p50)}, verify/cpu-s ${ratio(a.verify_per_cpu_s, b.verify_per_cpu_s)}`,
  );
} finally {
  for (const tree of started) await tree.close();
  await backend.close();
  await devnet.stop();
  await rm(workDir, { recursive: true, force: true });
}
