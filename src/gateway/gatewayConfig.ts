import { z } from "zod";
import { findNetworkPreset } from "../chain/index.js";
import { TollgateError } from "../errors/index.js";
import { parseMoney, USAGE_UNITS } from "../pricing/index.js";

const addressSchema = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "an EVM address (0x + 40 hex digits)");
const privateKeySchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/, "a 32-byte hex private key (0x + 64 hex digits)");
const moneySchema = z.union([z.string(), z.number().int().nonnegative()]).transform((value, ctx) => {
  try {
    return parseMoney(String(value));
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

const backendSchema = z.strictObject({
  /** Base URL of an OpenAI-compatible API, including `/v1`. */
  baseUrl: z.string().url(),
  /** The backend's API key, already resolved (the CLI reads `apiKeyEnv`). */
  apiKey: z.string().optional(),
  /** Name of the environment variable holding the API key (resolved by the CLI). */
  apiKeyEnv: z.string().optional(),
  /** Model name to send upstream, when it differs from the public id. */
  model: z.string().optional(),
  /** Longest wait for the response headers, and for each next chunk of a stream (ms). */
  timeoutMs: z.number().int().positive().default(120_000),
  /** Longest a generation may run, start to end; the gateway stops the backend there (seconds). */
  maxDurationSeconds: z.number().positive().max(3_600).default(240),
  /** The APIs the backend speaks, each served on its gateway route; default the model's kind. */
  apis: z
    .array(z.enum(["chat", "completion", "embedding", "messages", "responses", "image"]))
    .min(1)
    .optional(),
  /** Backend-specific fields that also carry the output limit (e.g. llama.cpp's `n_predict`). */
  outputLimitFields: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).default([]),
});

const modelSchema = z
  .strictObject({
    id: z.string().min(1),
    kind: z.enum(["chat", "completion", "embedding", "image"]).default("chat"),
    backend: backendSchema,
    /** Price per 1M input tokens ("$0.15" or atomic units). */
    inputPrice: moneySchema.optional(),
    /** Price per 1M output tokens. */
    outputPrice: moneySchema.optional(),
    /** Fixed fee added to every upto charge. */
    fixedFee: moneySchema.default(0n),
    /** Price per unit: per 1M tokens, per image, per second (`compute_ms`), per 1M bytes, per request. */
    prices: z.partialRecord(z.enum(USAGE_UNITS), moneySchema).optional(),
    /** Shorthand for `prices.compute_ms`: per second of backend time. */
    pricePerSecond: moneySchema.optional(),
    /** Price per image by size (`"1024x1024"`) or size and quality (`"1024x1024/hd"`); the first size is the default. */
    imagePrices: z.record(z.string(), moneySchema).optional(),
    /** Fixed price per request, offered with the `exact` scheme. */
    exactPrice: moneySchema.optional(),
    /** A fixed price covers at most this many prompt tokens (by the gateway's bound). */
    exactMaxPromptTokens: z.number().int().positive().default(16_384),
    /** A fixed price covers at most this many choices (`n`, `best_of` × prompts). */
    exactMaxChoices: z.number().int().positive().default(1),
    maxOutputTokens: z.number().int().positive().default(4096),
    /** Tokenizer model name for the prompt bound (defaults to the id); unknown → byte bound. */
    tokenizer: z.string().optional(),
    description: z.string().optional(),
  })
  .superRefine((model, ctx) => {
    const unitPriced =
      model.prices !== undefined || model.pricePerSecond !== undefined || model.imagePrices !== undefined;
    if (model.inputPrice === undefined && model.exactPrice === undefined && !unitPriced) {
      ctx.addIssue({
        code: "custom",
        message: "needs inputPrice or prices (upto), or exactPrice (exact)",
        path: ["inputPrice"],
      });
    }
    if (
      model.kind !== "embedding" &&
      model.kind !== "image" &&
      model.inputPrice !== undefined &&
      model.outputPrice === undefined
    ) {
      ctx.addIssue({
        code: "custom",
        message: "outputPrice is required with inputPrice",
        path: ["outputPrice"],
      });
    }
  });

const facilitatorSchema = z.union([
  z.strictObject({ url: z.string().url(), timeoutMs: z.number().int().positive().default(10_000) }),
  z.strictObject({
    /** Key of the in-process facilitator, already resolved (the CLI reads `privateKeyEnv`). */
    privateKey: privateKeySchema.optional(),
    privateKeyEnv: z.string().optional(),
    /** Calls made while others are in flight share one JSON-RPC batch; false for an RPC that refuses batches. */
    rpcBatch: z.boolean().default(true),
    /** Paying the gas of buyers' Permit2 approvals (eip2612GasSponsoring); the seller pays for each. */
    gasSponsoring: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Sponsored approvals per payer (counted in memory since the gateway started). */
        perPayerLimit: z.number().int().min(0).default(3),
        /** Also relay signed approve transactions for tokens without EIP-2612 (erc20ApprovalGasSponsoring). */
        erc20Approval: z.boolean().default(false),
      })
      .default({ enabled: true, perPayerLimit: 3, erc20Approval: false }),
  }),
]);

/** The gateway's configuration file (`tollgate.yaml`), validated. */
export const gatewayConfigSchema = z
  .strictObject({
    network: z.string().default("eip155:31337"),
    rpcUrl: z.string().url().optional(),
    /** Settlement token; defaults to the network's USDC. */
    asset: addressSchema.optional(),
    /** EIP-712 domain of the asset; defaults to the network's USDC domain. */
    assetDomain: z.strictObject({ name: z.string(), version: z.string() }).optional(),
    payTo: addressSchema,
    facilitator: facilitatorSchema.default({
      rpcBatch: true,
      gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: false },
    }),
    maxTimeoutSeconds: z.number().int().min(10).max(86_400).default(300),
    /** Time an authorization must stay valid after the longest generation, for its settlement (seconds). */
    settlementMarginSeconds: z.number().int().min(5).max(3_600).default(30),
    server: z
      .strictObject({
        host: z.string().default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(4021),
        /** Largest request body accepted on the inference routes, in bytes (413 above). */
        maxBodyBytes: z
          .number()
          .int()
          .min(1024)
          .default(4 * 1024 * 1024),
      })
      .default({ host: "127.0.0.1", port: 4021, maxBodyBytes: 4 * 1024 * 1024 }),
    ledger: z
      .strictObject({
        dataDir: z.string().optional(),
        /** A PostgreSQL URL, already resolved (the CLI reads `DATABASE_URL` or `databaseUrlEnv`). */
        databaseUrl: z.string().optional(),
        /** Name of the environment variable holding the PostgreSQL URL (default `DATABASE_URL`). */
        databaseUrlEnv: z.string().optional(),
        /** PostgreSQL schema for the tables (created if missing); default the server's search_path. */
        schema: z.string().optional(),
      })
      .default({}),
    /** Bounds on the facilitator's answers. */
    timeouts: z
      .strictObject({
        /** Past it a paid request gets 503 + Retry-After and nothing runs. */
        verifySeconds: z.number().positive().max(600).default(15),
        /** Past it the receipt says settlement_pending; the ledger records the real outcome when it comes. */
        settleSeconds: z.number().positive().max(3_600).default(90),
      })
      .default({ verifySeconds: 15, settleSeconds: 90 }),
    /** Finishing what a stopped gateway left pending (see the README). */
    recovery: z
      .strictObject({
        /** claimed / serving / metered rows untouched this long are dead requests (a live one refreshes every 10 s). */
        graceSeconds: z.number().min(0).default(60),
        /** settling rows wait longer: a live settle may take up to its timeout. */
        settlingGraceSeconds: z.number().min(0).default(120),
        /** How often the recovery pass runs after the one at start. */
        intervalSeconds: z.number().min(1).default(15),
      })
      .default({ graceSeconds: 60, settlingGraceSeconds: 120, intervalSeconds: 15 }),
    /** Public URL prefix of the gateway, used in 402 `resource` fields. */
    publicUrl: z.string().url().optional(),
    models: z.array(modelSchema).min(1),
  })
  .superRefine((config, ctx) => {
    const preset = findNetworkPreset(config.network);
    if (!preset)
      ctx.addIssue({ code: "custom", message: `unknown network ${config.network}`, path: ["network"] });
    if (!config.asset && !preset?.usdc) {
      ctx.addIssue({ code: "custom", message: "asset is required on this network", path: ["asset"] });
    }
    const ids = new Set<string>();
    for (const [i, model] of config.models.entries()) {
      const needed = Math.ceil(model.backend.maxDurationSeconds) + config.settlementMarginSeconds;
      if (config.maxTimeoutSeconds < needed)
        ctx.addIssue({
          code: "custom",
          message: `${config.maxTimeoutSeconds} s is shorter than model ${model.id}'s longest generation (backend.maxDurationSeconds ${model.backend.maxDurationSeconds}) plus settlementMarginSeconds (${config.settlementMarginSeconds}): a buyer's authorization could expire before it is settled; raise maxTimeoutSeconds to at least ${needed} or lower backend.maxDurationSeconds`,
          path: ["maxTimeoutSeconds"],
        });
      if (ids.has(model.id))
        ctx.addIssue({
          code: "custom",
          message: `duplicate model id ${model.id}`,
          path: ["models", i, "id"],
        });
      ids.add(model.id);
    }
  });

export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>;
export type GatewayConfig = z.output<typeof gatewayConfigSchema>;
export type ModelConfig = GatewayConfig["models"][number];

/** Validates a parsed config object; a failure names the key that is wrong. */
export function parseGatewayConfig(input: unknown): GatewayConfig {
  const result = gatewayConfigSchema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const key = (issue?.path ?? []).map(String).join(".") || "(root)";
  throw new TollgateError({
    code: "TOLLGATE_CONFIG_INVALID",
    shortMessage: `config key ${key}: ${issue?.message ?? "invalid"}`,
    details: { issues: result.error.issues.slice(0, 10) },
  });
}
