import { mkdir, readFile } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml, type Tags } from "yaml";

/**
 * YAML's core schema reads an unquoted `0x…` as a hexadecimal integer, so an address written
 * without quotes became a float (`3.44e+47`); no key here is a hex number, so `0x…` stays text.
 */
const withoutHexIntegers = (tags: Tags): Tags =>
  tags.filter(
    (tag) => !(typeof tag === "object" && tag.tag === "tag:yaml.org,2002:int" && tag.format === "HEX"),
  );

import { z } from "zod";
import { TollgateError } from "../errors/index.js";
import {
  configProblems,
  type GatewayConfig,
  gatewayConfigSchema,
  type ModelConfig,
  modelUnitPrices,
  startGateway,
} from "../gateway/index.js";
import type { Ledger } from "../ledger/index.js";
import { formatMoney, type UsageUnit } from "../pricing/index.js";
import { createCliLogger, parseFlags, printLine, waitForShutdownSignal } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { crashHooksFromFaultPoint } from "./faultPoints.js";
import { claimLedgerDir, DEFAULT_LEDGER_DIR, type LedgerClaim } from "./ledgerAccess.js";
import { describeDatabase } from "./openCliLedger.js";
import { reconcileReport } from "./reconcileReport.js";

const flagsSchema = z.object({
  config: z.string().default("tollgate.yaml"),
  port: z.coerce.number().int().min(0).max(65535).optional(),
});

/** `tollgate gateway`: the gateway from a YAML config file. */
export async function gatewayCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags("gateway", argv, commandFlags.gateway, flagsSchema);
  const config = await loadGatewayConfig(flags.config);
  if (flags.port !== undefined) config.server.port = flags.port;
  // The gateway keeps its ledger on disk unless the config says otherwise.
  const claim = await claimConfiguredLedger(config);
  const logger = createCliLogger();
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway({
      config,
      logger,
      ...crashHooksFromFaultPoint(process.env.TOLLGATE_FAULT_POINT),
    });
    await serveClaimedLedger(claim, gateway.ledger, config);
  } catch (error) {
    await claim?.release();
    throw error;
  }
  printLine(
    `gateway listening on ${gateway.url}/v1 (${config.models.length} model${config.models.length === 1 ? "" : "s"}, ${config.network}); paid to ${config.payTo}; ledger ${describeLedger(config)}`,
  );
  // Prices as the gateway reads them: a bare number is atomic units, so `inputPrice: 3` shows as $0.000003.
  for (const model of config.models) printLine(`  ${model.id}: ${describeModelPrices(model)}`);
  if (config.channels) printLine(`  channels: ${describeChannels(config.channels)}`);
  await waitForShutdownSignal();
  await gateway.close();
  await claim?.release();
  return 0;
}

/**
 * Where the gateway keeps its books, as its start-up line names them: a ledger other than the operator
 * meant (another folder, a stray DATABASE_URL) would start from nothing, and its channels from the
 * chain's claimed totals.
 */
export function describeLedger(config: GatewayConfig): string {
  const { databaseUrl, schema, dataDir = DEFAULT_LEDGER_DIR } = config.ledger;
  if (databaseUrl) return `PostgreSQL ${describeDatabase(databaseUrl)}${schema ? ` schema ${schema}` : ""}`;
  return `PGlite ${dataDir.includes("://") ? dataDir : resolve(dataDir)}`;
}

const PER_UNIT: Record<UsageUnit, string> = {
  input_tokens: "1M input tokens",
  cached_input_tokens: "1M cached input tokens",
  cache_write_input_tokens: "1M cache-write tokens",
  output_tokens: "1M output tokens",
  reasoning_tokens: "1M reasoning tokens",
  images: "image",
  compute_ms: "second",
  output_bytes: "1M output bytes",
  input_characters: "1M input characters",
  input_audio_seconds: "second of input audio",
  requests: "request",
};

/** A model's prices in dollars, as charged: `$0.15 per 1M input tokens, $0.60 per 1M output tokens`. */
export function describeModelPrices(model: ModelConfig): string {
  const parts: string[] = [];
  const prices = modelUnitPrices(model);
  for (const unit of Object.keys(PER_UNIT) as UsageUnit[]) {
    const price = prices?.[unit];
    // A unit priced as its base unit (cached input as input, reasoning as output) says nothing more.
    const base =
      unit === "reasoning_tokens" ? "output_tokens" : unit.endsWith("input_tokens") ? "input_tokens" : unit;
    const asBase = base !== unit && prices?.[base] === price;
    if (price !== undefined && !asBase && !(unit === "images" && model.imagePrices))
      parts.push(`${formatMoney(price)} per ${PER_UNIT[unit]}`);
  }
  for (const [size, price] of Object.entries(model.imagePrices ?? {}))
    parts.push(`${formatMoney(price)} per image ${size}`);
  if (model.exactPrice !== undefined) parts.push(`${formatMoney(model.exactPrice)} per request (exact)`);
  return parts.length > 0 ? parts.join(", ") : "free";
}

/**
 * A payment-channel config as the gateway reads it, amounts in dollars: `minDeposit $1, minClaimAtomic $1 (…)`.
 */
export function describeChannels(channels: NonNullable<GatewayConfig["channels"]>): string {
  return `minDeposit ${formatMoney(channels.minDeposit)} (${channels.minDeposit} atomic), minClaimAtomic ${formatMoney(channels.minClaimAtomic)} (${channels.minClaimAtomic} atomic), claimIntervalSeconds ${channels.claimIntervalSeconds}, settleIntervalSeconds ${channels.settleIntervalSeconds}, withdrawDelaySeconds ${channels.withdrawDelaySeconds}`;
}

/**
 * A PGlite ledger directory (default .tollgate/ledger, parents created) is claimed for this process, so that
 * `tollgate ledger` reads it through this gateway; PostgreSQL and in-memory ledgers need no claim.
 */
export async function claimConfiguredLedger(config: GatewayConfig): Promise<LedgerClaim | undefined> {
  if (config.ledger.databaseUrl) return undefined;
  config.ledger.dataDir ??= DEFAULT_LEDGER_DIR;
  if (config.ledger.dataDir.includes("://")) return undefined;
  await mkdir(config.ledger.dataDir, { recursive: true });
  return claimLedgerDir(config.ledger.dataDir);
}

/**
 * Serves the claimed ledger to `tollgate ledger`, `channels` and `reconcile` run beside this gateway: PGlite
 * is one process's database, so they read it through this process, and it reconciles it with this config.
 */
export async function serveClaimedLedger(
  claim: LedgerClaim | undefined,
  ledger: Pick<Ledger, "payments" | "channels">,
  config: GatewayConfig,
): Promise<void> {
  const description = `PGlite ${config.ledger.dataDir} (through the gateway holding it, process ${process.pid})`;
  await claim?.serve(ledger, { reconcile: (range) => reconcileReport(ledger, description, config, range) });
}

/** Reads and parses a YAML config file; a failure is a config error naming the file. */
export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === "ENOENT";
    // The example ships beside src/ and dist/, in the clone and in the installed package alike.
    // Named by the path to copy from: relative when it is below the current directory, else in full.
    const examplePath = fileURLToPath(new URL("../../tollgate.example.yaml", import.meta.url));
    const fromHere = relative(process.cwd(), examplePath);
    const example = fromHere.startsWith("..") || isAbsolute(fromHere) ? examplePath : fromHere;
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: missing
        ? `cannot read config file ${path}: no such file; copy ${example} to it and edit it, or name another with --config`
        : `cannot read config file ${path}: ${(cause as Error).message}`,
      cause,
    });
  }
  try {
    return parseYaml(text, { customTags: withoutHexIntegers });
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `${path} is not valid YAML: ${(cause as Error).message}`,
      cause,
    });
  }
}

/** Replaces `*Env` keys by the environment values they name; only the CLI reads the environment. */
export function resolveSecrets(input: unknown): unknown {
  const { config, problems } = resolveSecretsCollecting(input);
  if (problems.length > 0)
    throw new TollgateError({ code: "TOLLGATE_CONFIG_INVALID", shortMessage: problems.join("; ") });
  return config;
}

/**
 * Reads, resolves and validates a gateway config file, reporting every problem at once: a missing
 * environment variable of one model does not hide a wrong key elsewhere.
 */
export async function loadGatewayConfig(path: string): Promise<GatewayConfig> {
  const { config, problems } = resolveSecretsCollecting(await readConfigFile(path));
  const result = gatewayConfigSchema.safeParse(config);
  const all = [...problems, ...(result.success ? [] : configProblems(result.error.issues))];
  if (all.length > 0 || !result.success) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage:
        all.length === 1
          ? `${path}: ${all[0]}`
          : `${path} has ${all.length} problems:\n  ${all.join("\n  ")}`,
      details: { problems: all },
    });
  }
  return result.data;
}

function resolveSecretsCollecting(input: unknown): { config: unknown; problems: string[] } {
  const problems: string[] = [];
  if (typeof input !== "object" || input === null) return { config: input, problems };
  const config = structuredClone(input) as Record<string, unknown>;
  const fromEnv = (name: unknown, key: string): string | undefined => {
    if (typeof name !== "string") {
      problems.push(`config key ${key}: must be the name of an environment variable (a string)`);
      return undefined;
    }
    const value = process.env[name];
    if (!value) problems.push(`config key ${key}: environment variable ${name} is not set`);
    return value || undefined;
  };
  const facilitator = config.facilitator as Record<string, unknown> | undefined;
  if (facilitator?.privateKeyEnv !== undefined) {
    const key = fromEnv(facilitator.privateKeyEnv, "facilitator.privateKeyEnv");
    if (key !== undefined) facilitator.privateKey = key;
    delete facilitator.privateKeyEnv;
  }
  const receipts = config.receipts as Record<string, unknown> | undefined;
  if (receipts?.signingKeyEnv !== undefined) {
    receipts.signingKey = fromEnv(receipts.signingKeyEnv, "receipts.signingKeyEnv");
    delete receipts.signingKeyEnv;
  }
  const channels = config.channels as Record<string, unknown> | undefined;
  if (typeof channels === "object" && channels !== null && channels.receiverAuthorizerKeyEnv !== undefined) {
    const key = fromEnv(channels.receiverAuthorizerKeyEnv, "channels.receiverAuthorizerKeyEnv");
    if (key !== undefined) channels.receiverAuthorizerKey = key;
    delete channels.receiverAuthorizerKeyEnv;
  }
  // The ledger's PostgreSQL URL: the variable named by ledger.databaseUrlEnv, else DATABASE_URL when set.
  const ledger =
    config.ledger === undefined
      ? {}
      : typeof config.ledger === "object" && config.ledger !== null
        ? (config.ledger as Record<string, unknown>)
        : undefined; // not an object: the schema names the key
  if (ledger?.databaseUrlEnv !== undefined) {
    const url = fromEnv(ledger.databaseUrlEnv, "ledger.databaseUrlEnv");
    if (url !== undefined) ledger.databaseUrl = url;
    delete ledger.databaseUrlEnv;
    config.ledger = ledger;
  } else if (ledger !== undefined && ledger.databaseUrl === undefined && process.env.DATABASE_URL) {
    ledger.databaseUrl = process.env.DATABASE_URL;
    config.ledger = ledger;
  }
  for (const key of ["metrics", "dashboard", "facilitator"]) {
    const endpoint = config[key] as Record<string, unknown> | undefined;
    if (typeof endpoint === "object" && endpoint !== null && endpoint.tokenEnv !== undefined) {
      const token = fromEnv(endpoint.tokenEnv, `${key}.tokenEnv`);
      if (token !== undefined) endpoint.token = token;
      delete endpoint.tokenEnv;
    }
  }
  if (Array.isArray(config.models)) {
    for (const [i, model] of config.models.entries()) {
      const backend = (model as { backend?: Record<string, unknown> })?.backend;
      if (backend?.apiKeyEnv !== undefined) {
        const apiKey = fromEnv(backend.apiKeyEnv, `models.${i}.backend.apiKeyEnv`);
        if (apiKey !== undefined) backend.apiKey = apiKey;
        delete backend.apiKeyEnv;
      }
    }
  }
  return { config, problems };
}
