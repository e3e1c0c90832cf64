import { Registry } from "prom-client";
import { z } from "zod";
import { findNetworkPreset } from "../chain/index.js";
import {
  createFacilitator,
  createFacilitatorMetrics,
  serveFacilitator,
  settlementStoreFromLog,
} from "../facilitator/index.js";
import { createCliLogger, parseFlags, printLine, waitForShutdownSignal } from "./cliSupport.js";
import { openCliLedger } from "./openCliLedger.js";

const flagsSchema = z.object({
  rpc: z.string().url().optional(),
  privateKey: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, "a 32-byte hex private key (0x…)")
    .optional(),
  network: z.string().default("eip155:31337"),
  port: z.coerce.number().int().min(0).max(65535).default(4022),
  host: z.string().default("127.0.0.1"),
  "no-rpc-batch": z.boolean().default(false),
  "no-gas-sponsoring": z.boolean().default(false),
  "sponsor-limit": z.coerce.number().int().min(0).default(3),
});

/** `tollgate facilitator`: verify and settle over HTTP. */
export async function facilitatorCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags(
    "facilitator",
    argv,
    {
      rpc: { type: "string" },
      "private-key": { type: "string" },
      network: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "no-rpc-batch": { type: "boolean" },
      "no-gas-sponsoring": { type: "boolean" },
      "sponsor-limit": { type: "string" },
    },
    z.preprocess((values) => {
      const v = values as Record<string, unknown>;
      return { ...v, privateKey: v["private-key"] ?? process.env.TOLLGATE_FACILITATOR_KEY };
    }, flagsSchema),
  );
  const preset = findNetworkPreset(flags.network);
  if (!preset) throw new Error(`unknown network ${flags.network}; use a CAIP-2 id such as eip155:137`);
  const rpcUrl = flags.rpc ?? preset.defaultRpcUrl;
  if (!rpcUrl) throw new Error("--rpc is required for this network");
  if (!flags.privateKey) throw new Error("--private-key (or TOLLGATE_FACILITATOR_KEY) is required");
  const logger = createCliLogger();
  const local = preset.network === "eip155:31337";
  // Idempotent settlement across restarts needs the log on disk: PostgreSQL when DATABASE_URL is set.
  const ledger = process.env.DATABASE_URL ? (await openCliLedger({ dataDir: "", logger })).ledger : undefined;
  const metrics = new Registry();
  const facilitator = createFacilitator({
    rpcUrl,
    privateKey: flags.privateKey as `0x${string}`,
    network: preset.network,
    logger,
    pollingIntervalMs: local ? 50 : 1_000,
    rpcBatch: !flags["no-rpc-batch"],
    gasSponsoring: { enabled: !flags["no-gas-sponsoring"], perPayerLimit: flags["sponsor-limit"] },
    onFacilitatorEvent: createFacilitatorMetrics({ registry: metrics }),
    ...(ledger ? { settlementStore: settlementStoreFromLog(ledger.settlements) } : {}),
  });
  const server = await serveFacilitator({
    facilitator,
    host: flags.host,
    port: flags.port,
    logger,
    metrics,
  });
  printLine(`facilitator ${facilitator.address} on ${preset.name} (${preset.network}) at ${server.url}`);
  await waitForShutdownSignal();
  await server.close();
  await ledger?.close();
  return 0;
}
