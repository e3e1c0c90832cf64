import { randomBytes } from "node:crypto";
import { Registry } from "prom-client";
import { createPublicClient, http } from "viem";
import { z } from "zod";
import { findNetworkPreset } from "../chain/index.js";
import { TollgateError } from "../errors/index.js";
import {
  createFacilitator,
  createFacilitatorMetrics,
  serveFacilitator,
  settlementStoreFromLog,
} from "../facilitator/index.js";
import { createCliLogger, parseFlags, printLine, waitForShutdownSignal } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { openCliLedger } from "./openCliLedger.js";
import { readPrivateKey } from "./readPrivateKey.js";

const flagsSchema = z.object({
  rpc: z.url("the JSON-RPC URL of the chain to settle on (tollgate devnet prints its rpcUrl)"),
  "private-key": z.string().optional(),
  network: z.string().default("eip155:31337"),
  port: z.coerce.number().int().min(0).max(65535).default(4022),
  host: z.string().default("127.0.0.1"),
  "no-rpc-batch": z.boolean().default(false),
  "no-gas-sponsoring": z.boolean().default(false),
  "sponsor-limit": z.coerce.number().int().min(0).default(3),
  "sponsor-daily-limit": z.coerce.number().int().min(0).optional(),
  "erc20-approval": z.boolean().default(false),
  asset: z
    .string()
    .regex(/^0x[0-9a-fA-F]{40}(,0x[0-9a-fA-F]{40})*$/, "one or more token addresses, separated by commas")
    .optional(),
});

/** `tollgate facilitator`: verify and settle over HTTP. */
export async function facilitatorCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags("facilitator", argv, commandFlags.facilitator, flagsSchema);
  const preset = findNetworkPreset(flags.network);
  if (!preset) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `facilitator: unknown network ${flags.network}; use a CAIP-2 id such as eip155:137, or polygon, amoy, base, base-sepolia, devnet`,
    });
  }
  const privateKey = readPrivateKey(
    flags["private-key"] ?? process.env.TOLLGATE_FACILITATOR_KEY,
    flags["private-key"] === undefined ? "--private-key or TOLLGATE_FACILITATOR_KEY" : "--private-key",
  );
  const token = facilitatorToken(preset.network === "eip155:31337");
  const rpcUrl = flags.rpc;
  await checkChain(rpcUrl, preset.chainId, preset.network);
  const logger = createCliLogger();
  const local = preset.network === "eip155:31337";
  // Idempotent settlement and each payer's sponsored approvals, across restarts, need the log on disk:
  // PostgreSQL when DATABASE_URL is set.
  const ledger = process.env.DATABASE_URL ? (await openCliLedger({ dataDir: "", logger })).ledger : undefined;
  const metrics = new Registry();
  const facilitator = createFacilitator({
    rpcUrl,
    privateKey,
    network: preset.network,
    logger,
    pollingIntervalMs: local ? 50 : 1_000,
    rpcBatch: !flags["no-rpc-batch"],
    gasSponsoring: {
      enabled: !flags["no-gas-sponsoring"],
      perPayerLimit: flags["sponsor-limit"],
      dailyLimit: flags["sponsor-daily-limit"],
      erc20Approval: flags["erc20-approval"],
    },
    onFacilitatorEvent: createFacilitatorMetrics({ registry: metrics }),
    ...(ledger
      ? { settlementStore: settlementStoreFromLog(ledger.settlements), payerQuotas: ledger.quotas }
      : {}),
    // The tokens it moves: --asset, else the network's USDC (on the devnet, any).
    ...(flags.asset ? { assets: flags.asset.split(",") } : {}),
  });
  const server = await serveFacilitator({
    facilitator,
    token: token.value,
    host: flags.host,
    port: flags.port,
    logger,
    metrics,
  });
  printLine(
    `facilitator ${facilitator.address} on ${preset.name} (${preset.network}) at ${server.url}; /verify, /settle and /metrics want Authorization: Bearer ${token.printed} (give it to gateways as facilitator.tokenEnv)`,
  );
  await waitForShutdownSignal();
  await server.close();
  await ledger?.close();
  return 0;
}

/**
 * The bearer token `/verify`, `/settle` and `/metrics` want: `TOLLGATE_FACILITATOR_TOKEN`, else, on the
 * devnet only, a new random one (printed). On a real network it must be set: a new token at each restart
 * would leave every gateway refused until it was given the new one, and their payments unsettled.
 */
function facilitatorToken(devnet: boolean): { value: string; printed: string } {
  const given = process.env.TOLLGATE_FACILITATOR_TOKEN;
  if ((given === undefined || given === "") && !devnet)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage:
        "set TOLLGATE_FACILITATOR_TOKEN (at least 16 characters, e.g. openssl rand -hex 32) and give the same value to the gateways as facilitator.tokenEnv: on a real network the token must survive restarts",
    });
  if (given === undefined || given === "") {
    const value = randomBytes(32).toString("hex");
    return { value, printed: `${value} (a new one each start unless TOLLGATE_FACILITATOR_TOKEN sets it)` };
  }
  if (given.length < 16)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `TOLLGATE_FACILITATOR_TOKEN is ${given.length} characters: use at least 16 (e.g. openssl rand -hex 32), since whoever holds it can settle payments for any amount up to their maximum`,
    });
  return { value: given, printed: "<TOLLGATE_FACILITATOR_TOKEN>" };
}

/** Refuses to start against a chain that does not answer, or answers as another chain. */
async function checkChain(rpcUrl: string, chainId: number, network: string): Promise<void> {
  let answered: number;
  try {
    answered = await createPublicClient({
      transport: http(rpcUrl, { timeout: 10_000, retryCount: 1 }),
    }).getChainId();
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_CHAIN_UNAVAILABLE",
      shortMessage: `no chain answers at --rpc ${rpcUrl}: start one (tollgate devnet prints its rpcUrl) or give a reachable RPC`,
      cause,
    });
  }
  if (answered !== chainId) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `--rpc ${rpcUrl} is chain ${answered}, not ${network}; give --network eip155:${answered} or the RPC of ${network}`,
    });
  }
}
