import { existsSync } from "node:fs";
import { z } from "zod";
import { TollgateError } from "../errors/index.js";
import { parseGatewayConfig } from "../gateway/index.js";
import { escapeC1Controls, exitCodes, parseFlags, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { readConfigFile } from "./gatewayCommand.js";
import { DEFAULT_LEDGER_DIR, reconcileThroughGateway } from "./ledgerAccess.js";
import { openCliLedger } from "./openCliLedger.js";
import {
  differenceCount,
  formatReconcileReport,
  type ReconcileReport,
  reconcileReport,
  reconcileTarget,
} from "./reconcileReport.js";

const DEFAULT_CONFIG_FILE = "tollgate.yaml";
const blockSchema = z.coerce.bigint().refine((value) => value >= 0n, "a block number (0 or more)");
const flagsSchema = z.object({
  config: z.string().optional(),
  fromBlock: blockSchema.default(0n),
  toBlock: blockSchema.optional(),
  rpc: z.string().url().optional(),
  dataDir: z.string().optional(),
  json: z.boolean().default(false),
});

/** `tollgate reconcile`: the ledger against the chain, both ways. */
export async function reconcileCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags(
    "reconcile",
    argv,
    commandFlags.reconcile,
    z.preprocess((values) => {
      const v = values as Record<string, unknown>;
      return { ...v, fromBlock: v["from-block"], toBlock: v["to-block"], dataDir: v["data-dir"] };
    }, flagsSchema),
  );
  const range = { fromBlock: flags.fromBlock, toBlock: flags.toBlock, rpcUrl: flags.rpc };
  const print = (report: ReconcileReport) => {
    if (flags.json) printLine(escapeC1Controls(JSON.stringify(report)));
    else for (const line of formatReconcileReport(report)) printLine(line);
    return differenceCount(report) === 0 ? exitCodes.ok : exitCodes.failure;
  };
  // A running `tollgate dev` (or a gateway with no config file here) holding the default data dir
  // reconciles its own ledger with its own config: no config file needed.
  const configPath = flags.config ?? DEFAULT_CONFIG_FILE;
  if (!existsSync(configPath) && !process.env.DATABASE_URL) {
    const heldDir = flags.dataDir ?? DEFAULT_LEDGER_DIR;
    const served = await reconcileThroughGateway<ReconcileReport>(heldDir, range);
    if (served) return print(served);
    // Without a config named, the likely case is a `tollgate dev` ledger whose chain stopped with it.
    if (flags.config === undefined)
      throw new TollgateError({
        code: "TOLLGATE_CONFIG_INVALID",
        shortMessage: `no tollgate dev or gateway is running on ${heldDir}, and there is no ${DEFAULT_CONFIG_FILE} here: run tollgate reconcile while tollgate dev runs (its chain stops with it), or name the gateway's config with --config`,
      });
  }
  const config = parseReconcileConfig(await readConfigFile(configPath));
  const dataDir = flags.dataDir ?? config.ledger.dataDir ?? DEFAULT_LEDGER_DIR;
  // PGlite is one process's database: the gateway holding it reconciles it, with its own config.
  if (!process.env[config.ledger.databaseUrlEnv ?? "DATABASE_URL"]) {
    const served = await reconcileThroughGateway<ReconcileReport>(dataDir, range);
    if (served) return print(served);
  }
  reconcileTarget(config, flags.rpc);
  const { ledger, description } = await openCliLedger({
    dataDir,
    databaseUrlEnv: config.ledger.databaseUrlEnv,
    schema: config.ledger.schema,
  });
  try {
    return print(await reconcileReport(ledger, description, config, range));
  } finally {
    await ledger.close();
  }
}

/**
 * A gateway config as reconciling reads it: its secrets are not resolved (reconciling needs no key,
 * only where the money goes), and its operator endpoints, whose tokens are secrets too, are left out.
 */
export function parseReconcileConfig(raw: unknown) {
  const {
    dashboard: _dashboard,
    metrics: _metrics,
    ...rest
  } = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
  return parseGatewayConfig(rest);
}
