// `npm run bench [-- --quick] [--json FILE] [--profile DIR] [--memory-ledger]`
// What billing costs: direct vs Tollgate (upto) vs the official x402 middleware vs Tollgate paid by
// channel (batch-settlement), side by side in one run on loopback; the gas of each way to pay, from
// the run's own transactions; facilitator and ledger micro-benchmarks. It reports; it never fails on
// timings.
import { mkdir, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type KeyedAccount, startDevnet } from "../src/devnet/index.js";
import { type ChannelGasFigures, measureChannelGas } from "./channelGas.js";
import { startBenchChild } from "./childProcess.js";
import { runFacilitatorBench } from "./facilitatorBench.js";
import { runLedgerBench } from "./ledgerBench.js";
import {
  createBenchBuyer,
  createChannelBenchBuyer,
  sendRequest,
  type Variant,
  variants,
} from "./payingClient.js";
import { formatProfileSummary, summarizeProfileFile } from "./profileSummary.js";
import { buildReport, describeMachine, formatReport } from "./report.js";
import type { BackendReady } from "./serveBackend.js";
import type { ChannelClaimReply, StackInput, StackReady } from "./serveStack.js";
import {
  amortisationRequests,
  backendProfiles,
  benchChannels,
  benchMaxTokens,
  benchPrices,
  fullCounts,
  gasPrices,
  maxConcurrency,
  type ProfileName,
  pollingIntervalMs,
  quickCounts,
  revenuePerRequestUsd,
} from "./settings.js";
import { facilitatorTimesFromLog } from "./stackLog.js";
import { runVariantBench } from "./variantBench.js";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "string" },
    profile: { type: "string" },
    "memory-ledger": { type: "boolean", default: false },
    only: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (flags.help) {
  console.log(`usage: npm run bench -- [--quick] [--json FILE] [--profile DIR] [--memory-ledger]
  --quick          fewer samples (CI; under 4 minutes)
  --json FILE      also write the results as JSON
  --profile DIR    CPU-profile the serving stack (gateway + official middleware) while the variants run,
                   write DIR/stack.cpuprofile and DIR/stack.log, and print its top self-time functions
  --memory-ledger  keep the gateway's PGlite ledger in memory instead of on disk
  --only LIST      run only these variants (comma-separated: direct,proxy,tollgate,official,channels), e.g. to profile one`);
  process.exit(0);
}

const only = (flags.only ?? variants.join(",")).split(",").map((name) => name.trim()) as Variant[];
const unknownVariant = only.find((name) => !variants.includes(name));
if (unknownVariant) {
  console.error(`unknown variant ${unknownVariant}; expected some of ${variants.join(", ")}`);
  process.exit(2);
}
const profileNames = Object.keys(backendProfiles) as ProfileName[];
const counts = flags.quick ? quickCounts : fullCounts;
const startedAt = performance.now();
const log = (line: string) =>
  process.stderr.write(
    `[bench ${((performance.now() - startedAt) / 1000).toFixed(1).padStart(6)} s] ${line}\n`,
  );
const machine = describeMachine();

log("starting the devnet and the backend process");
const [devnet, backend] = await Promise.all([
  startDevnet({ buyers: 3 }),
  startBenchChild<BackendReady>({ script: "serveBackend.ts", input: {} }),
]);
const cleanups: Array<() => Promise<void>> = [() => devnet.stop(), () => backend.stop()];
const cleanUp = async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
};

try {
  log(`funding ${maxConcurrency} buyers and a facilitator key for the micro-benchmarks`);
  const workerAccounts: KeyedAccount[] = [];
  for (let i = 0; i < maxConcurrency; i++) workerAccounts.push(await devnet.createBuyer());
  const microFacilitator = await devnet.createBuyer(0n);

  if (flags.profile) await mkdir(flags.profile, { recursive: true });
  log(`starting the serving stack${flags.profile ? `, CPU-profiled into ${flags.profile}` : ""}`);
  const stack = await startBenchChild<StackReady>({
    script: "serveStack.ts",
    input: {
      rpcUrl: devnet.rpcUrl,
      network: devnet.network,
      usdc: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      facilitatorPrivateKey: devnet.accounts.facilitator.privateKey,
      backendUrls: backend.ready.urls,
      pollingIntervalMs,
      memoryLedger: flags["memory-ledger"],
      ...(flags.profile ? { logDir: flags.profile, profileDir: flags.profile } : {}),
    } satisfies StackInput,
  });
  cleanups.push(() => stack.stop());

  const facilitator = await runFacilitatorBench({
    devnet,
    facilitatorAccount: microFacilitator,
    buyers: devnet.accounts.buyers,
    counts,
    pollingIntervalMs,
    log,
  });
  log("ledger: claim and writes");
  const ledger = await runLedgerBench({ samples: counts.ledgerSamples, memory: flags["memory-ledger"] });

  stack.send("profile-start");
  const uptoBuyers = workerAccounts.map((account) => createBenchBuyer(account.privateKey, devnet.network));
  const channelBuyers = workerAccounts.map((account) =>
    createChannelBenchBuyer(account.privateKey, devnet.network, devnet.rpcUrl),
  );
  const figures = await runVariantBench({
    baseUrlFor: (variant, model) => {
      if (variant === "tollgate" || variant === "channels") return `${stack.ready.gatewayUrl}/v1`;
      if (variant === "official") return `${stack.ready.officialUrl}/v1`;
      if (variant === "proxy") return `${stack.ready.proxyUrl}/v1`;
      const profile = profileNames.find((name) => backendProfiles[name].model === model);
      if (!profile) throw new Error(`bench: no backend for model ${model}`);
      return backend.ready.urls[profile];
    },
    buyersFor: (variant) => (variant === "channels" ? channelBuyers : uptoBuyers),
    counts,
    only,
    log,
  });

  // Channel gas: claim every channel in one transaction and settle; then one more request on one
  // channel, claimed and settled alone.
  let gas: ChannelGasFigures | undefined;
  if (only.includes("channels")) {
    log("channels: claiming every channel in one transaction, then one channel alone");
    const claimNow = async () => {
      const reply = JSON.parse(await stack.ask("channels-claim")) as ChannelClaimReply;
      if (reply.error) throw new Error(`bench: channel claim failed: ${reply.error}`);
      return reply;
    };
    const all = await claimNow();
    const extra = await sendRequest({
      baseUrl: `${stack.ready.gatewayUrl}/v1`,
      model: backendProfiles.latency.model,
      stream: false,
      buyer: channelBuyers[0],
    });
    if (!extra.ok) throw new Error(`bench: the request before the single claim failed: ${extra.error}`);
    const single = await claimNow();
    gas = await measureChannelGas({
      rpcUrl: devnet.rpcUrl,
      uptoTransactions: figures.tollgate.transactions,
      depositTransactions: figures.channels.depositTransactions,
      claims: [...all.claims, ...single.claims],
      settles: [all.settle, single.settle].flatMap((hash) => (hash ? [hash] : [])),
    });
  }

  const settings = {
    mode: flags.quick ? "quick" : "full",
    transport:
      "loopback HTTP/1.1 (127.0.0.1); client, backend, serving stack and anvil in separate processes",
    backends: backendProfiles,
    max_tokens: benchMaxTokens,
    prices_per_mtok_atomic: {
      input: benchPrices.inputPerMTokAtomic.toString(),
      output: benchPrices.outputPerMTokAtomic.toString(),
    },
    chain: "anvil devnet (one block per transaction), Permit2 + x402 upto proxy at canonical addresses",
    facilitator: `in-process in the gateway (ledger-backed settlement log); the same instance over HTTP for the official middleware; receipt polling ${pollingIntervalMs} ms`,
    ledger: flags["memory-ledger"] ? "PGlite in memory" : "PGlite on disk (temp dir)",
    logging: "pino, level info, synchronous file destination (as `tollgate gateway`)",
    official:
      "@x402/hono paymentMiddleware + @x402/evm/upto/server UptoEvmScheme; actual usage settled via Settlement-Overrides",
    buyer:
      "official x402Client + @x402/evm/upto/client UptoEvmScheme; every request does 402 → sign → paid retry",
    channels: `same gateway with channels (batch-settlement) offered beside upto; official x402Client + @x402/evm/batch-settlement/client BatchSettlementEvmScheme, one channel per buyer, $${Number(benchChannels.minDepositAtomic) / 1e6} deposit; every request does 402 → sign voucher → paid retry; the receipt (PAYMENT-RESPONSE, or the stream's final event) goes to the client's payment-response hook; deposit requests reported apart`,
    gas_prices: gasPrices,
    revenue_per_request_usd: revenuePerRequestUsd,
    amortisation_requests: amortisationRequests,
    counts,
    concurrency_buyers: maxConcurrency,
    variants: only,
  };
  const inSitu = await facilitatorTimesFromLog(stack.ready.logFile, {
    tollgate: figures.tollgate.sequentialWindows,
    official: figures.official.sequentialWindows,
  });
  const report = buildReport({ variants: figures, facilitator, ledger, inSitu, gas }, settings, machine);
  console.log(formatReport(report));
  for (const [name, variant] of Object.entries(figures)) {
    if (variant.firstError)
      console.log(`${name}: ${variant.errors} failed requests; first: ${variant.firstError}`);
  }
  if (flags.json) {
    await writeFile(flags.json, `${JSON.stringify(report, null, 2)}\n`);
    log(`wrote ${flags.json}`);
  }
  await stack.stop();
  cleanups.pop();
  log(
    `load average at the end: ${loadavg()
      .map((value) => value.toFixed(2))
      .join(" ")}`,
  );
  if (flags.profile)
    console.log(formatProfileSummary(await summarizeProfileFile(join(flags.profile, "stack.cpuprofile"))));
} finally {
  await cleanUp();
}
log("done");
