import { isAddress } from "viem";
import { z } from "zod";
import { findNetworkPreset } from "../chain/index.js";
import { explainIssue, TollgateError } from "../errors/index.js";
import {
  formatMoney,
  imageTokenBound,
  parseMoney,
  tokenizerForModel,
  USAGE_UNITS,
} from "../pricing/index.js";
import {
  CLAIM_MARGIN_SECONDS,
  onchainStateTrustMs,
  shortestSafeWithdrawDelaySeconds,
} from "./channels/channelTiming.js";
import { modelPriceProblems, servedRoutes } from "./modelPriceCoverage.js";
import { outputLimitFieldClashes } from "./outputLimitFieldClashes.js";
import { payToProblem } from "./payToProblem.js";
import { routeKinds, routes } from "./routes/index.js";
import { isUnitPriced, unofferedModelProblem } from "./unofferedModels.js";

/**
 * An EVM address. One written in mixed case carries an EIP-55 checksum, and one whose checksum does not
 * match was mistyped or changed in copying: still an address, someone else's, so the money paid to it
 * would be lost. Refused; an address in one case (no checksum) is taken as written.
 */
const addressSchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, "an EVM address (0x + 40 hex digits)")
  .refine((address) => !hasWrongChecksum(address), {
    error: (issue) =>
      `${String(issue.input)} is written in mixed case, and its EIP-55 checksum does not match: a character was mistyped or changed in copying, and what is paid to it would go to an address that is not yours; copy the address again from the wallet or block explorer that shows it`,
  });

function hasWrongChecksum(address: string): boolean {
  if (!/^0x[0-9a-fA-F]{40}$/.test(address)) return false;
  const hex = address.slice(2);
  const mixedCase = hex !== hex.toLowerCase() && hex !== hex.toUpperCase();
  return mixedCase && !isAddress(address, { strict: true });
}
const privateKeySchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/, "a 32-byte hex private key (0x + 64 hex digits)");
const moneySchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  if (typeof value === "number" && !(Number.isSafeInteger(value) && value >= 0)) {
    ctx.addIssue({
      code: "custom",
      message:
        value < 0
          ? `${value}: money cannot be negative`
          : `${value} is not a whole number of atomic units; write "$${value}" (with the quotes) for dollars`,
    });
    return z.NEVER;
  }
  try {
    return parseMoney(String(value));
  } catch (error) {
    // The key's line already says the config is invalid: the amount's own words, without the code again.
    const message = error instanceof TollgateError ? error.shortMessage : (error as Error).message;
    ctx.addIssue({ code: "custom", message });
    return z.NEVER;
  }
});

/** A bare number below this many atomic units ($0.01) for a channel amount is taken for dollars meant. */
const LEAST_BARE_CHANNEL_ATOMIC = 10_000;

/**
 * A channel amount (a deposit, a claim threshold): money as `moneySchema` reads it, but a bare number of less
 * than a cent, which an operator writes for dollars (`minDeposit: 5`), is refused with what to write: read as
 * atomic units, it would ask a deposit of one request and claim every charge, each a transaction the seller pays.
 */
const channelAmountSchema = z
  .union([z.string(), z.number()])
  .superRefine((value, ctx) => {
    if (
      typeof value === "number" &&
      Number.isSafeInteger(value) &&
      value > 0 &&
      value < LEAST_BARE_CHANNEL_ATOMIC
    )
      ctx.addIssue({
        code: "custom",
        message: `${value} is read as ${value} atomic units (${formatMoney(BigInt(value))}): write "$${value}" (with the quotes) for dollars, or "${value}" (quoted) if you mean atomic units`,
      });
  })
  .pipe(moneySchema);

/**
 * The longest wait a timer can hold: Node fires a longer one after 1 ms, so a timeout written larger
 * would end every call at once. An hour, as the longest generation (`maxDurationSeconds`) is.
 */
const MAX_TIMER_MS = 3_600_000;

/** The most output tokens a model may be sold per answer: above any model's own output limit. */
const MAX_OUTPUT_TOKENS = 1_000_000;

/**
 * The largest request body the gateway takes: each is held in memory while it is priced, so one far larger
 * would let a few requests exhaust the host's memory.
 */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

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
  timeoutMs: z.number().int().positive().max(MAX_TIMER_MS).default(120_000),
  /** Longest a generation may run, start to end; the gateway stops the backend there (seconds). */
  maxDurationSeconds: z.number().positive().max(3_600).default(240),
  /** The APIs the backend speaks, each served on its gateway route; default the model's kind. */
  apis: z.array(z.enum(routeKinds)).min(1).optional(),
  /** Backend-specific fields that also carry the output limit (e.g. llama.cpp's `n_predict`). */
  outputLimitFields: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)).default([]),
});

const modelSchema = z
  .strictObject({
    id: z.string().min(1),
    kind: z.enum(routeKinds).default("chat"),
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
    /** The output a request may ask for, and the output one that names no limit is quoted (and run) for. */
    maxOutputTokens: z
      .number()
      .int()
      .positive()
      .max(
        MAX_OUTPUT_TOKENS,
        `at most ${MAX_OUTPUT_TOKENS} (no model writes more in one answer): a request that names no max_tokens is quoted this many output tokens at outputPrice, so a larger value asks every such buyer for more than its wallet holds, and is sent to the backend as its max_tokens, which it refuses; write the model's own output limit (e.g. 4096, 32768)`,
      )
      .default(4096),
    /**
     * The model reasons before it answers without streaming its reasoning (OpenAI's o-series, gpt-5 on
     * chat or Responses), which only the usage at a stream's end states: a stream whose buyer leaves
     * once the answer began is read on, nothing forwarded, for that usage, and its reasoning charged.
     * Default: true when `prices.reasoning_tokens` is set. Otherwise such a stream's backend is stopped
     * at once and what was delivered is charged. Messages requests go by their `thinking` instead.
     */
    hiddenReasoning: z.boolean().optional(),
    /**
     * The model's context window in tokens: what one inline document (a PDF, which reads as many times
     * its bytes) may count as at most; unset, `DOCUMENT_TOKENS` (1M).
     */
    contextTokens: z.number().int().positive().optional(),
    /** Tokenizer model name for the prompt bound (defaults to the id); unknown → byte bound. */
    tokenizer: z.string().optional(),
    description: z.string().optional(),
  })
  .superRefine((model, ctx) => {
    const unpriced = !isUnitPriced(model) && model.exactPrice === undefined;
    if (unpriced) {
      ctx.addIssue({
        code: "custom",
        message: "needs inputPrice, prices or fixedFee (upto), or exactPrice (exact)",
        path: ["inputPrice"],
      });
    }
    // An exact payment of 0 is still settled: a transaction (the facilitator's gas) per request, moving nothing.
    if (model.exactPrice === 0n)
      ctx.addIssue({
        code: "custom",
        message:
          'exactPrice "$0" would have the facilitator send a transaction, at the seller\'s gas, for every request to move nothing: to give the model away, price its units "$0" (e.g. inputPrice and outputPrice), which settles no transaction; otherwise set a price above zero',
        path: ["exactPrice"],
      });
    // A fee alone is a price per request by upto: beside a fixed price, every request would be sold at the fee.
    if (
      model.exactPrice !== undefined &&
      model.fixedFee > 0n &&
      model.inputPrice === undefined &&
      model.prices === undefined &&
      model.pricePerSecond === undefined &&
      model.imagePrices === undefined
    )
      ctx.addIssue({
        code: "custom",
        message:
          "fixedFee beside exactPrice, with no other unit price, sells every request by upto at the fee alone, whatever its tokens, beside the exact offer: to sell at a fixed price only, remove fixedFee (exactPrice is the price per request); to sell per request by upto too, write that price as prices.requests",
        path: ["fixedFee"],
      });
    // A price no route meters would be quoted and charged as nothing: refused, not given away.
    if (model.prices?.output_bytes !== undefined) {
      ctx.addIssue({
        code: "custom",
        message:
          "output_bytes is not metered by any route this gateway serves, so it would never be charged: price output_tokens (or images, compute_ms) instead",
        path: ["prices", "output_bytes"],
      });
    }
    const sellsOutput = servedRoutes(model).some((kind) => routes[kind].outputTokens);
    if (sellsOutput && model.inputPrice !== undefined && model.outputPrice === undefined) {
      ctx.addIssue({
        code: "custom",
        message: "outputPrice is required with inputPrice",
        path: ["outputPrice"],
      });
    }
    // Images are read by the routes that write tokens (chat, messages, responses): a speech, embedding or
    // rerank model sold under another id reads none.
    const upstreamImageProblem = sellsOutput ? upstreamImageTokensProblem(model) : undefined;
    if (upstreamImageProblem)
      ctx.addIssue({ code: "custom", message: upstreamImageProblem, path: ["backend", "model"] });
    for (const problem of outputLimitFieldClashes(model))
      ctx.addIssue({ code: "custom", message: problem.message, path: problem.path });
    // A window holds the model's output: one smaller than it is not a window, most likely thousands written as
    // tokens, and each inline document is bounded, so quoted and charged at most, as that many prompt tokens.
    if (sellsOutput && model.contextTokens !== undefined && model.contextTokens < model.maxOutputTokens)
      ctx.addIssue({
        code: "custom",
        message: `model ${model.id} has contextTokens ${model.contextTokens}, below its maxOutputTokens ${model.maxOutputTokens} (default 4096): a context window holds the output the model writes, so one of them is wrong; for a small window, lower maxOutputTokens to what it holds; if the window was written in thousands, write it in tokens (e.g. 128000 for 128k): as it stands every inline document (a PDF) would be quoted and charged as at most ${model.contextTokens} prompt tokens however many the backend reads`,
        path: ["contextTokens"],
      });
    // The same rule for a prices map: input tokens priced and output tokens not would sell the output for nothing.
    const inputPriced = (["input_tokens", "cached_input_tokens", "cache_write_input_tokens"] as const).some(
      (unit) => model.prices?.[unit] !== undefined,
    );
    if (
      sellsOutput &&
      inputPriced &&
      model.prices?.output_tokens === undefined &&
      model.outputPrice === undefined
    )
      ctx.addIssue({
        code: "custom",
        message:
          "prices has input tokens but no output_tokens: every output token would be sold for nothing; add prices.output_tokens (or outputPrice)",
        path: ["prices", "output_tokens"],
      });
    const emptyPrices =
      model.prices !== undefined &&
      Object.keys(model.prices).length === 0 &&
      model.fixedFee === 0n &&
      model.inputPrice === undefined &&
      model.outputPrice === undefined &&
      model.exactPrice === undefined &&
      model.pricePerSecond === undefined &&
      model.imagePrices === undefined;
    if (emptyPrices)
      ctx.addIssue({
        code: "custom",
        message:
          "prices lists no unit, so every request would be served for nothing: price at least one unit",
        path: ["prices"],
      });
    for (const problem of modelPriceProblems(model, !unpriced && !emptyPrices))
      ctx.addIssue({ code: "custom", message: problem.message, path: problem.path });
  });

/**
 * Why the upstream model (`backend.model`) would be sold images below what it reads, or undefined: one
 * known to read an image as more tokens than the public id says (gpt-4o-mini's ~48k under another id).
 * An image is bounded by the id, the one name buyers know, who check their charges against that bound.
 */
function upstreamImageTokensProblem(model: { id: string; backend: { model?: string | undefined } }) {
  const upstream = model.backend.model;
  if (upstream === undefined || tokenizerForModel(upstream) === "bytes") return undefined;
  const read = imageTokenBound(upstream);
  const bound = imageTokenBound(model.id);
  if (read <= bound) return undefined;
  return `model ${model.id} sends ${upstream} upstream, which reads an image as up to ${read} tokens, but buyers and this gateway bound an image sent to ${model.id} at ${bound}, by its id: each image would be charged at most ${bound} prompt tokens, the rest at the seller's cost; publish the model under its upstream name (id: ${upstream}), by which buyers bound its images as it reads them`;
}

const facilitatorSchema = z.union([
  z.strictObject({
    url: z.string().url(),
    /** The bearer token a `tollgate facilitator` wants (it prints it); the CLI reads `tokenEnv`. */
    token: z.string().min(1).optional(),
    tokenEnv: z.string().optional(),
    timeoutMs: z.number().int().positive().max(MAX_TIMER_MS).default(10_000),
  }),
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
        /** Sponsored approvals per payer (counted in the ledger: across restarts and replicas). */
        perPayerLimit: z.number().int().min(0).default(3),
        /** Sponsored approvals of all payers together in any 24 h (counted in the ledger); none when absent. */
        dailyLimit: z.number().int().min(0).optional(),
        /** Also relay signed approve transactions for tokens without EIP-2612 (erc20ApprovalGasSponsoring). */
        erc20Approval: z.boolean().default(false),
      })
      .default({ enabled: true, perPayerLimit: 3, erc20Approval: false }),
  }),
]);

const paymentSchemeSchema = z.enum(["upto", "batch-settlement", "exact"]);

/** Payment channels (x402 `batch-settlement`): how often vouchers are claimed and claims swept to payTo. */
const channelsSchema = z.strictObject({
  /** How often outstanding vouchers are claimed on chain (one transaction for many channels). */
  claimIntervalSeconds: z.number().positive().max(86_400).default(300),
  /** How often claimed funds are moved to payTo (one transfer). */
  settleIntervalSeconds: z.number().positive().max(86_400).default(3_600),
  /** A channel is claimed once this much is charged and unclaimed (sooner when its payer withdraws or it idles). */
  minClaimAtomic: channelAmountSchema.default(1_000_000n),
  /** The delay a payer's withdrawal must wait, written into every channel (at least 900 s). */
  withdrawDelaySeconds: z
    .number()
    .int()
    .min(900)
    .max(30 * 86_400)
    .default(86_400),
  /** The deposit a new channel is asked for (at least one request's maximum). */
  minDeposit: channelAmountSchema.default(1_000_000n),
  /**
   * Cooperative refunds one payer may have in 24 h (counted in the ledger, across restarts and replicas; each is a
   * transaction the seller pays); beyond, the payer withdraws on chain at its own gas.
   */
  refundsPerPayerPerDay: z.number().int().positive().default(8),
  /**
   * Deposits below `minDeposit` one payer may have relayed in 24 h (counted in the ledger, across restarts and replicas;
   * each is a transaction the seller pays); beyond, such a deposit is refused before it is sent.
   */
  smallDepositsPerPayerPerDay: z.number().int().nonnegative().default(8),
  /** Cooperatively refund channels idle this long (seconds); unset: never on its own. */
  refundIdleSeconds: z
    .number()
    .min(
      600,
      "at least 600 (10 minutes): each idle refund is a transaction the seller pays, and the payer's next request then needs a new deposit, another; refunding channels idle only seconds would pay both between a payer's requests, and look for idle channels as often; write how long a channel may sit unused before its balance goes back (e.g. 86400), or leave it out to never refund on its own",
    )
    .optional(),
  /** The receiver-authorizer key that signs claims and refunds, already resolved (the CLI reads the env). */
  receiverAuthorizerKey: privateKeySchema.optional(),
  /** Environment variable holding the receiver-authorizer key; default: the in-process facilitator's key. */
  receiverAuthorizerKeyEnv: z.string().optional(),
});

/** An operator endpoint: on or off, and the token that opens it (`tokenEnv` is resolved by the CLI). */
function operatorEndpointSchema(enabledByDefault: boolean) {
  return z.strictObject({
    enabled: z.boolean().default(enabledByDefault),
    token: z.string().min(16, "at least 16 characters").optional(),
    tokenEnv: z.string().optional(),
  });
}

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
          .max(
            MAX_BODY_BYTES,
            `at most ${MAX_BODY_BYTES} (64 MiB): every request body up to it is held in memory while it is priced, so a few requests of a larger one could exhaust the host's memory and stop the gateway with its payments in flight; write the largest body a buyer needs (default 4194304, 4 MiB)`,
          )
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
        intervalSeconds: z.number().min(1).max(86_400).default(15),
        /** How long after it was booked a settlement is read back from the chain (a reorganised block). */
        confirmAfterSeconds: z.number().min(0).default(30),
      })
      .default({ graceSeconds: 60, settlingGraceSeconds: 120, intervalSeconds: 15, confirmAfterSeconds: 30 }),
    /** The schemes a per-token model offers, in this order (batch-settlement only with `channels`). */
    schemes: z.array(paymentSchemeSchema).min(1).default(["upto", "batch-settlement", "exact"]),
    /** Payment channels; without this key no batch-settlement offer is made. */
    channels: channelsSchema.optional(),
    /** Public URL prefix of the gateway, used in 402 `resource` fields. */
    publicUrl: z.string().url().optional(),
    /** The seller's receipt key: every settled response carries receipts it signs (see docs/receipts.md). */
    receipts: z
      .strictObject({
        /** The key, already resolved (the CLI reads `signingKeyEnv`). */
        signingKey: privateKeySchema.optional(),
        /** Name of the environment variable holding the key (resolved by the CLI). */
        signingKeyEnv: z.string().optional(),
      })
      .optional(),
    /** `GET /metrics` (Prometheus); with a token, only for `Authorization: Bearer <token>`. */
    metrics: operatorEndpointSchema(true).default({ enabled: true }),
    /** `GET /dashboard`, the operator's live page: off unless enabled, and then only with its token. */
    dashboard: operatorEndpointSchema(false)
      .refine((dashboard) => !dashboard.enabled || dashboard.token !== undefined, {
        message: "an enabled dashboard needs a token (token, or tokenEnv naming an environment variable)",
        path: ["token"],
      })
      .default({ enabled: false }),
    models: z.array(modelSchema).min(1),
  })
  .superRefine((config, ctx) => {
    const preset = findNetworkPreset(config.network);
    if (!preset)
      ctx.addIssue({ code: "custom", message: `unknown network ${config.network}`, path: ["network"] });
    if (!config.asset && !preset?.usdc) {
      ctx.addIssue({ code: "custom", message: "asset is required on this network", path: ["asset"] });
    }
    const payToRefusal = payToProblem(config.payTo, config.asset ?? preset?.usdc);
    if (payToRefusal) ctx.addIssue({ code: "custom", message: payToRefusal, path: ["payTo"] });
    // A withdrawal must be seen and claimed before its delay ends: claims run well inside it.
    if (config.channels && config.channels.claimIntervalSeconds * 3 > config.channels.withdrawDelaySeconds)
      ctx.addIssue({
        code: "custom",
        message: `claimIntervalSeconds (${config.channels.claimIntervalSeconds}) must be at most a third of withdrawDelaySeconds (${config.channels.withdrawDelaySeconds}), so a payer's withdrawal is claimed before its delay ends`,
        path: ["channels", "claimIntervalSeconds"],
      });
    if (config.channels) {
      const { withdrawDelaySeconds, claimIntervalSeconds } = config.channels;
      const longest = config.models.reduce(
        (most, model) => Math.max(model.backend.maxDurationSeconds, most),
        0,
      );
      const needed = shortestSafeWithdrawDelaySeconds(withdrawDelaySeconds, claimIntervalSeconds, longest);
      // A payer may start its withdrawal right after the gateway read the channel: the request accepted
      // then must be charged and claimed before the withdrawal can end.
      if (needed > withdrawDelaySeconds)
        ctx.addIssue({
          code: "custom",
          message: `withdrawDelaySeconds (${withdrawDelaySeconds}) is too short: a withdrawal unseen for ${onchainStateTrustMs(withdrawDelaySeconds) / 1000} s (the channel state trusted between chain reads), a request running ${longest} s (the longest backend.maxDurationSeconds), the next claim round (claimIntervalSeconds ${claimIntervalSeconds}) and ${CLAIM_MARGIN_SECONDS} s for the claim's transaction need ${needed} s, or that request's charge cannot be claimed; raise withdrawDelaySeconds to at least ${needed}, or lower the others`,
          path: ["channels", "withdrawDelaySeconds"],
        });
    }
    // A settle the request still waits for must never look abandoned: recovery would send it again.
    const { settleSeconds } = config.timeouts;
    const { settlingGraceSeconds } = config.recovery;
    if (settlingGraceSeconds <= settleSeconds)
      ctx.addIssue({
        code: "custom",
        message: `recovery.settlingGraceSeconds (${settlingGraceSeconds}) must be longer than timeouts.settleSeconds (${settleSeconds}): a recovery pass (this gateway's, or a sibling replica's on the same ledger) takes a payment settling for longer than its grace as abandoned, and settles it again while the first settle, which the request still waits for, may land: a second transaction at the seller's gas that the authorization's nonce makes fail, and the payment may be booked a debt though its payer paid; set recovery.settlingGraceSeconds to at least ${settleSeconds + 30}, or timeouts.settleSeconds below ${settlingGraceSeconds}`,
        path: ["recovery", "settlingGraceSeconds"],
      });
    // A remote facilitator's settle runs on, past settleSeconds, until facilitator.timeoutMs: as long as that.
    const remoteSettleSeconds = "url" in config.facilitator ? config.facilitator.timeoutMs / 1000 : 0;
    if (settlingGraceSeconds > settleSeconds && settlingGraceSeconds <= remoteSettleSeconds)
      ctx.addIssue({
        code: "custom",
        message: `recovery.settlingGraceSeconds (${settlingGraceSeconds}) must be longer than facilitator.timeoutMs (${remoteSettleSeconds * 1000} ms): the gateway's call to settle a payment runs until then, past timeouts.settleSeconds, and a recovery pass would settle that payment again while the call may still land; set recovery.settlingGraceSeconds to at least ${Math.ceil(remoteSettleSeconds) + 30}, or facilitator.timeoutMs below ${settlingGraceSeconds * 1000}`,
        path: ["recovery", "settlingGraceSeconds"],
      });
    const ids = new Set<string>();
    for (const [i, model] of config.models.entries()) {
      const needed = Math.ceil(model.backend.maxDurationSeconds) + config.settlementMarginSeconds;
      if (config.maxTimeoutSeconds < needed)
        ctx.addIssue({
          code: "custom",
          message: `${config.maxTimeoutSeconds} s is shorter than model ${model.id}'s longest generation (backend.maxDurationSeconds ${model.backend.maxDurationSeconds}) plus settlementMarginSeconds (${config.settlementMarginSeconds}): a buyer's authorization could expire before it is settled; raise maxTimeoutSeconds to at least ${needed} or lower backend.maxDurationSeconds`,
          path: ["maxTimeoutSeconds"],
        });
      const unoffered = unofferedModelProblem(model, config.schemes, config.channels !== undefined);
      if (unoffered) ctx.addIssue({ code: "custom", message: unoffered, path: ["schemes"] });
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

/** Validates a parsed config object; a failure names every key that is wrong, each with what to write. */
export function parseGatewayConfig(input: unknown): GatewayConfig {
  const result = gatewayConfigSchema.safeParse(input);
  if (result.success) return result.data;
  throw new TollgateError({
    code: "TOLLGATE_CONFIG_INVALID",
    shortMessage: configProblems(result.error.issues).join("; "),
    details: { issues: result.error.issues.slice(0, 50) },
  });
}

/** One `config key <path>: <what is wrong>` line per problem (a union's problems from its closest member). */
export function configProblems(issues: readonly z.core.$ZodIssue[]): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const key = issue.path.map(String).join(".") || "(root)";
    if (issue.code === "invalid_union" && issue.errors.length > 0) {
      // The member that got furthest (fewest problems) says what is wrong; "Invalid input" says nothing.
      const closest = [...issue.errors].sort((a, b) => a.length - b.length)[0] ?? [];
      const nested = closest.map((inner) => ({ ...inner, path: [...issue.path, ...inner.path] }));
      lines.push(...configProblems(nested));
      continue;
    }
    lines.push(`config key ${key}: ${explainIssue(gatewayConfigSchema, issue)}`);
  }
  return [...new Set(lines)];
}
