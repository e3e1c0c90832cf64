import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { createServer } from "node:net";
import { z } from "zod";
import { startDemoBackend } from "../demo/index.js";
import { startDevnet } from "../devnet/index.js";
import { TollgateError } from "../errors/index.js";
import { startGateway } from "../gateway/index.js";
import { createDemoToolServer, type McpHttpHandler, mountMcpEndpoint } from "../mcp/index.js";
import { countTextTokens } from "../pricing/index.js";
import { createCliLogger, parseFlags, printLine, waitForShutdownSignal } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { devGatewayConfig } from "./devGatewayConfig.js";
import { claimConfiguredLedger, serveClaimedLedger } from "./gatewayCommand.js";
import { DEFAULT_LEDGER_DIR } from "./ledgerAccess.js";
import { isLoopbackHost } from "./loopbackHost.js";

const flagsSchema = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(4021),
  host: z.string().default("127.0.0.1"),
  json: z.boolean().default(false),
  freshBuyer: z.boolean().default(false),
  upstream: z.string().url().optional(),
  upstreamKeyEnv: z.string().optional(),
  model: z.string().optional(),
  dataDir: z.string().default(DEFAULT_LEDGER_DIR),
  tokensPerSecond: z.coerce.number().min(0).default(50),
});

/**
 * Refuses to serve a real upstream beyond this machine: dev's money is devnet USDC, which anyone can
 * mint, so whoever reached the gateway would use the upstream (and its API key) for free.
 */
function refuseUpstreamBeyondLoopback(host: string, upstream: string): void {
  if (isLoopbackHost(host)) return;
  throw new TollgateError({
    code: "TOLLGATE_CONFIG_INVALID",
    shortMessage: `dev: --host ${host} is not a loopback address, and with --upstream it would let anyone who reaches this machine use ${upstream} for devnet USDC, which anyone can mint for free: keep --host 127.0.0.1 (or localhost, ::1) with --upstream, or sell a real upstream with tollgate gateway on a real network`,
    details: { field: "host" },
  });
}

/**
 * Throws the listen error (EADDRINUSE and its like, which `main` tells in words) when the gateway could
 * not listen on `host`:`port`; port 0 is any free one. The port is freed again at once.
 */
async function refuseTakenPort(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", reject);
    probe.listen(port, host, resolve);
  });
  await new Promise((resolve) => probe.close(resolve));
}

/** `tollgate dev`: the whole system on embedded defaults. */
export async function devCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags(
    "dev",
    argv,
    commandFlags.dev,
    z.preprocess((values) => {
      const v = values as Record<string, unknown>;
      return {
        ...v,
        upstreamKeyEnv: v["upstream-key-env"],
        dataDir: v["data-dir"],
        freshBuyer: v["fresh-buyer"],
        tokensPerSecond: v["tokens-per-second"],
      };
    }, flagsSchema),
  );
  if (flags.upstream) refuseUpstreamBeyondLoopback(flags.host, flags.upstream);
  // Before the devnet starts and the ledger is opened (which sets aside an earlier chain's channels).
  await refuseTakenPort(flags.host, flags.port);
  const logger = createCliLogger(flags.json ? "warn" : (process.env.TOLLGATE_LOG_LEVEL ?? "warn"));
  const startedAt = performance.now();
  if (!flags.json)
    printLine(
      contractsCached()
        ? "Starting Tollgate dev…"
        : "Starting Tollgate dev (compiling the devnet contracts, once: about 15 s)…",
    );
  const devnet = await startDevnet({ logger });
  const closers: Array<() => Promise<void>> = [() => devnet.stop()];
  try {
    let backendUrl = flags.upstream;
    let apiKey: string | undefined;
    let modelId = flags.model ?? "tollgate-demo";
    if (!backendUrl) {
      const demo = await startDemoBackend({
        countTokens: (text) => countTextTokens(text),
        tokensPerSecond: flags.tokensPerSecond,
      });
      closers.push(() => demo.close());
      backendUrl = demo.url;
      modelId = demo.model;
    } else if (flags.upstreamKeyEnv) {
      apiKey = process.env[flags.upstreamKeyEnv];
      if (!apiKey)
        throw new TollgateError({
          code: "TOLLGATE_CONFIG_INVALID",
          shortMessage: `dev: --upstream-key-env ${flags.upstreamKeyEnv}: that environment variable is not set`,
        });
    }
    const config = devGatewayConfig({
      devnet,
      backendUrl,
      apiKey,
      modelId,
      upstream: flags.upstream,
      host: flags.host,
      port: flags.port,
      dataDir: flags.dataDir,
      // The operator's dashboard is on in dev, behind a token made for this run (or TOLLGATE_DASHBOARD_TOKEN).
      dashboardToken: process.env.TOLLGATE_DASHBOARD_TOKEN || randomBytes(18).toString("base64url"),
    });
    const claim = await claimConfiguredLedger(config);
    if (claim) closers.unshift(() => claim.release());
    let mcp: McpHttpHandler | undefined;
    const gateway = await startGateway({
      config,
      logger,
      pollingIntervalMs: 20,
      // An example paid MCP server beside the OpenAI routes.
      routes: (app, billing) => {
        mcp = mountMcpEndpoint(app, {
          createServer: (endpointUrl) => createDemoToolServer({ billing, endpointUrl, model: modelId }),
        });
      },
    });
    closers.unshift(async () => {
      await mcp?.close();
      await gateway.close();
    });
    await serveClaimedLedger(claim, gateway.ledger, config);
    const mcpUrl = `${gateway.url}/mcp`;
    const buyer = flags.freshBuyer ? devnet.accounts.freshBuyers[0]! : devnet.accounts.buyers[0]!;
    const readyMs = Math.round(performance.now() - startedAt);
    if (flags.json) {
      printLine(
        JSON.stringify({
          gatewayUrl: gateway.url,
          mcpUrl,
          rpcUrl: devnet.rpcUrl,
          network: devnet.network,
          asset: devnet.contracts.usdc,
          model: modelId,
          dashboardUrl: gateway.dashboardUrl,
          metricsUrl: gateway.metricsUrl,
          buyer: {
            address: buyer.address,
            privateKey: buyer.privateKey,
            permit2Approved: !flags.freshBuyer,
            nativeGas: !flags.freshBuyer,
          },
        }),
      );
    } else {
      printLine(`Tollgate dev is up in ${readyMs} ms — test funds only, never use these keys elsewhere.`);
      printLine(
        `  gateway   ${gateway.url}/v1   (model ${modelId}: $0.50 / 1M input, $1.50 / 1M output tokens)`,
      );
      printLine(`  mcp       ${mcpUrl}   (paid tools: summarize per token, count_tokens $0.001 a call)`);
      printLine(`  dashboard ${gateway.dashboardUrl}`);
      printLine(`  metrics   ${gateway.metricsUrl}`);
      printLine(`  chain     ${devnet.rpcUrl}   (${devnet.network}, test USDC ${devnet.contracts.usdc})`);
      const dataDirFlag = flags.dataDir === DEFAULT_LEDGER_DIR ? "" : ` --data-dir ${flags.dataDir}`;
      printLine(
        flags.dataDir.includes("://")
          ? `  ledger    ${flags.dataDir}   (in this process's memory: no other command reads it, and it is gone when this stops)`
          : `  ledger    ${flags.dataDir}   (tollgate ledger${dataDirFlag} reads it, now and after this stops; tollgate reconcile${dataDirFlag} while this runs: the chain stops with it)`,
      );
      printLine(
        `  buyer     ${buyer.address}   (1,000 test USDC${flags.freshBuyer ? " only: no Permit2 approval, no gas" : ""})`,
      );
      printLine("");
      printLine("Pay for a streamed completion from another terminal:");
      printLine(
        `  TOLLGATE_PRIVATE_KEY=${buyer.privateKey} npx tollgate chat --gateway ${gateway.url} --rpc ${devnet.rpcUrl} --model ${modelId} "Tell me about tolls"`,
      );
      printLine("Press Ctrl-C to stop.");
    }
    await waitForShutdownSignal();
  } finally {
    for (const close of closers) await close().catch(() => undefined);
  }
  return 0;
}

/** Whether the devnet's compiled contracts are cached (in the package's node_modules/.cache, as the devnet keeps them). */
function contractsCached(): boolean {
  // src/cli and dist/cli both sit two levels below the package root.
  const cacheDir = new URL("../../node_modules/.cache/tollgate/contracts/", import.meta.url);
  try {
    return readdirSync(cacheDir).some((name) => name.endsWith(".json"));
  } catch {
    return false;
  }
}
