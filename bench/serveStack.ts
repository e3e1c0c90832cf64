import { randomBytes } from "node:crypto";
// Bench child: the billed servers in their own process — the Tollgate gateway (in-process facilitator,
// PGlite ledger, payment channels offered beside upto) and the official x402 middleware (same
// facilitator, served over HTTP), beside a bare proxy with neither (the floor of the gateway's HTTP path).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { serveFacilitator, type TollgateFacilitator } from "../src/facilitator/index.js";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { openLedger } from "../src/ledger/index.js";
import { startBareProxy } from "./bareProxy.js";
import { serveUntilStdinEnds } from "./childProcess.js";
import { startOfficialServer } from "./officialServer.js";
import { backendProfiles, benchChannels, benchPrices, type ProfileName } from "./settings.js";

export type StackInput = {
  rpcUrl: string;
  network: `eip155:${number}`;
  usdc: string;
  payTo: string;
  facilitatorPrivateKey: string;
  backendUrls: Record<ProfileName, string>;
  pollingIntervalMs: number;
  /** Ledger in memory instead of on disk. */
  memoryLedger: boolean;
  /** Where to write (and keep) the stack's log; a temp dir, removed at the end, when absent. */
  logDir?: string;
  /**
   * Where to write a CPU profile (`stack.cpuprofile`) of this process, from the parent's
   * `profile-start` line until it closes; no profiling when absent.
   */
  profileDir?: string;
};

/** The stack's answer to `channels-claim`: the claim transactions (channels in each) and the settle. */
export type ChannelClaimReply = {
  claims: Array<{ channels: number; transaction: string }>;
  settle?: string;
  error?: string;
};

export type StackReady = {
  gatewayUrl: string;
  proxyUrl: string;
  officialUrl: string;
  facilitatorUrl: string;
  logFile: string;
  ledgerDir: string;
};

const input = JSON.parse(process.argv[2] ?? "{}") as StackInput;
const workDir = await mkdtemp(join(tmpdir(), "tollgate-bench-"));
const logFile = join(input.logDir ?? workDir, "stack.log");
const ledgerDir = input.memoryLedger ? "memory://" : join(workDir, "ledger");
// What `tollgate gateway` runs with: pino at info, synchronous writes to a file descriptor.
const logger = pino({ level: "info", base: undefined }, pino.destination({ dest: logFile, sync: true }));
const assetDomain = { name: "USD Coin", version: "2" };

const config = parseGatewayConfig({
  network: input.network,
  rpcUrl: input.rpcUrl,
  asset: input.usdc,
  assetDomain,
  payTo: input.payTo,
  facilitator: { privateKey: input.facilitatorPrivateKey },
  server: { host: "127.0.0.1", port: 0 },
  ledger: { dataDir: ledgerDir },
  channels: {
    claimIntervalSeconds: benchChannels.claimIntervalSeconds,
    settleIntervalSeconds: benchChannels.settleIntervalSeconds,
    minClaimAtomic: 0,
    withdrawDelaySeconds: benchChannels.withdrawDelaySeconds,
    minDeposit: benchChannels.minDepositAtomic.toString(),
  },
  models: (Object.keys(backendProfiles) as ProfileName[]).map((name) => ({
    id: backendProfiles[name].model,
    backend: { baseUrl: input.backendUrls[name] },
    inputPrice: benchPrices.inputPerMTokAtomic.toString(),
    outputPrice: benchPrices.outputPerMTokAtomic.toString(),
    maxOutputTokens: 256,
  })),
});
const ledger = await openLedger({ dataDir: ledgerDir, logger });
const gateway = await startGateway({ config, ledger, logger, pollingIntervalMs: input.pollingIntervalMs });
// The official stack settles through the very same facilitator (one key, one nonce manager), over HTTP.
const facilitatorToken = randomBytes(32).toString("hex");
const facilitatorServer = await serveFacilitator({
  facilitator: gateway.facilitator as TollgateFacilitator,
  token: facilitatorToken,
  port: 0,
  logger,
});
const official = await startOfficialServer({
  facilitatorUrl: facilitatorServer.url,
  facilitatorToken,
  network: input.network,
  asset: input.usdc,
  assetDomain,
  payTo: input.payTo,
  models: config.models,
});
const proxy = await startBareProxy(
  Object.fromEntries(
    (Object.keys(backendProfiles) as ProfileName[]).map((name) => [
      backendProfiles[name].model,
      input.backendUrls[name],
    ]),
  ),
);

// Profiling starts on request, so module loading and start-up are not in the profile.
const profiler = input.profileDir ? new Session() : undefined;
let profiling: Promise<unknown> | undefined;
const startProfiling = () => {
  if (!profiler || profiling) return;
  profiler.connect();
  profiling = profiler.post("Profiler.enable").then(() => profiler.post("Profiler.start"));
};
const stopProfiling = async () => {
  if (!profiler || !profiling || !input.profileDir) return;
  await profiling;
  const { profile } = await profiler.post("Profiler.stop");
  await writeFile(join(input.profileDir, "stack.cpuprofile"), JSON.stringify(profile));
  profiler.disconnect();
};

/** Claims every channel's charges now (one transaction per 100 channels), then settles to payTo. */
async function claimChannels(): Promise<ChannelClaimReply> {
  const settlement = gateway.channels?.settlement;
  if (!settlement) return { claims: [], error: "the gateway offers no channels" };
  try {
    const claims = await settlement.claim({ force: true });
    const settled = await settlement.settle();
    return {
      claims: claims.map(({ channels, transaction }) => ({ channels, transaction })),
      ...(settled ? { settle: settled.transaction } : {}),
    };
  } catch (error) {
    return { claims: [], error: String(error) };
  }
}

serveUntilStdinEnds(
  {
    gatewayUrl: gateway.url,
    proxyUrl: proxy.url,
    officialUrl: official.url,
    facilitatorUrl: facilitatorServer.url,
    logFile,
    ledgerDir,
  } satisfies StackReady,
  async () => {
    await stopProfiling();
    await proxy.close();
    await official.close();
    await facilitatorServer.close();
    await gateway.close();
    await ledger.close();
    logger.flush();
    await rm(workDir, { recursive: true, force: true });
  },
  (line) => {
    if (line === "profile-start") startProfiling();
    if (line === "channels-claim") claimChannels().then((reply) => console.log(JSON.stringify(reply)));
  },
);
