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
import { explainIssue, TollgateError } from "../errors/index.js";
import { parseMoney } from "../pricing/index.js";
import { addressSchema, caip2NetworkSchema } from "../protocol/index.js";

const moneySchema = z.union([z.string(), z.number(), z.bigint()]).transform((value, ctx) => {
  try {
    return parseMoney(value);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as TollgateError).shortMessage ?? String(error) });
    return z.NEVER;
  }
});

const originSchema = z.string().transform((value, ctx) => {
  try {
    return providerOrigin(value);
  } catch {
    ctx.addIssue({ code: "custom", message: `provider key ${JSON.stringify(value)} is not a URL` });
    return z.NEVER;
  }
});

/** Seconds an authorization may stay valid (an offer's `maxTimeoutSeconds`). */
const timeoutSecondsSchema = z.number().int().positive();

const providerPolicySchema = z.strictObject({
  /** Largest maximum to authorize for one request to this provider. */
  perCall: moneySchema.optional(),
  /** Total per UTC day for this provider. */
  daily: moneySchema.optional(),
  /** The only recipients this provider may ask to be paid at. */
  payTo: z.array(addressSchema).optional(),
  /** Largest deposit (or top-up) into one channel with this provider. */
  maxDeposit: moneySchema.optional(),
  /** Refuse an offer of this provider whose authorization would stay valid longer than this (seconds). */
  maxTimeoutSeconds: timeoutSecondsSchema.optional(),
});

/** The spending policy, validated; every amount is in the asset's atomic units. */
export const spendingPolicySchema = z.strictObject({
  /** Largest maximum to authorize for one request. */
  perCall: moneySchema.optional(),
  /** Total per UTC day, all providers. */
  daily: moneySchema.optional(),
  /** Per provider, keyed by origin (`https://api.example.com`; a path is ignored). */
  providers: z
    .record(z.string(), providerPolicySchema)
    .default({})
    .transform((providers, ctx) => {
      const byOrigin: Record<string, z.infer<typeof providerPolicySchema>> = {};
      for (const [key, value] of Object.entries(providers)) {
        const origin = originSchema.safeParse(key);
        if (!origin.success) {
          ctx.addIssue({ code: "custom", message: `not a URL: ${key}`, path: [key] });
          return z.NEVER;
        }
        byOrigin[origin.data] = value;
      }
      return byOrigin;
    }),
  /**
   * Pay only the origins listed under `providers` (an allowlist): a seller the agent was led to, or
   * one of a seller's other host names, is refused before anything is signed. Default false.
   */
  onlyProviders: z.boolean().default(false),
  /** Largest deposit (or top-up) into one batch-settlement channel; $1.00 when neither this, `daily` nor `maxEscrow` is set. */
  maxDeposit: moneySchema.optional(),
  /**
   * The most of the buyer's money all sellers together may hold unspent in channels (deposits less
   * charges) when a new channel is opened; default `daily` when that is set.
   */
  maxEscrow: moneySchema.optional(),
  /**
   * Refuse a channel whose withdrawal delay is longer than this (seconds): a seller that will not
   * refund holds the deposit that long. Default 604800 (7 days).
   */
  maxWithdrawDelaySeconds: z.number().int().positive().default(604_800),
  /**
   * Paying by channel (batch-settlement) when a seller offers it: `prefer` (default) before upto
   * and exact; `fallback` only for a wallet without Permit2 allowance; `never`.
   */
  channels: z.enum(["prefer", "fallback", "never"]).default("prefer"),
  /**
   * Refuse an offer whose authorization would stay valid longer than this (its `maxTimeoutSeconds`,
   * in seconds): the seller could settle it until then. Default 3600.
   */
  maxTimeoutSeconds: timeoutSecondsSchema.default(3600),
  /** Refuse a maximum above this multiple of the expected cost (e.g. 3). */
  maxOverExpected: z.number().positive().optional(),
  /** Ask a person before authorizing a maximum above this. */
  confirmAbove: moneySchema.optional(),
  /** Refuse an offer that prices one generated image above this (e.g. "$0.08"). */
  maxImagePrice: moneySchema.optional(),
  /** Refuse an offer that prices a second of backend compute time above this (e.g. "$0.002"). */
  maxPricePerSecond: moneySchema.optional(),
  /** Refuse an offer that prices 1M characters of speech input above this (e.g. "$30"; OpenAI's tts-1 is $15). */
  maxCharacterPrice: moneySchema.optional(),
  /** CAIP-2 networks the buyer pays on; absent means any. */
  networks: z.array(caip2NetworkSchema).optional(),
  /** Token addresses the buyer pays with; absent means any. */
  assets: z.array(addressSchema).optional(),
  /**
   * How the router picks among providers: by default the cheapest; with
   * `preferFastestWithinPercent` the fastest (measured time to first token) among those priced
   * at most that many percent above the cheapest.
   */
  routing: z.strictObject({ preferFastestWithinPercent: z.number().min(0).max(1000).optional() }).default({}),
});

export type SpendingPolicy = z.output<typeof spendingPolicySchema>;
/** A policy as written in YAML or code: money as `"$0.05"`, an atomic string, or a bigint. */
export type SpendingPolicyInput = z.input<typeof spendingPolicySchema>;
export type ProviderPolicy = SpendingPolicy["providers"][string];

/**
 * Validates a spending policy (an object, or an already parsed one) and reads its money.
 * Throws `TOLLGATE_CONFIG_INVALID` naming the field.
 * @example
 * const policy = parseSpendingPolicy({ perCall: "$0.05", daily: "$5.00", maxOverExpected: 3 });
 */
export function parseSpendingPolicy(input: unknown): SpendingPolicy {
  const parsed = spendingPolicySchema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join(".") || "(policy)";
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `spending policy: ${field}: ${issue ? explainIssue(spendingPolicySchema, issue) : "invalid"}`,
      details: { field },
    });
  }
  return parsed.data;
}

/** Reads a spending policy from YAML text (the policy file's contents); an empty one is refused. */
export function parseSpendingPolicyYaml(text: string): SpendingPolicy {
  let value: unknown;
  try {
    value = parseYaml(text, { customTags: withoutHexIntegers });
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `spending policy is not valid YAML: ${(cause as Error).message}`,
      cause,
    });
  }
  // A file with nothing in it (or comments alone) is a mistake, not a wish to pay without limits.
  if (value === null || value === undefined) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage:
        "spending policy is empty: write its caps (perCall, daily, …), or {} to pay without limits",
    });
  }
  return parseSpendingPolicy(value);
}

/**
 * The provider key of a URL: its origin (`scheme://host:port`); for a scheme without origins, such as
 * the `mcp://name` of a tool server, its scheme and host. A host name written with the DNS root's dot
 * (`api.example.com.`) is the same host, and the same provider: its caps bind it.
 */
export function providerOrigin(url: string | URL): string {
  const parsed = new URL(url);
  if (parsed.hostname.endsWith(".")) parsed.hostname = parsed.hostname.slice(0, -1);
  return parsed.origin !== "null" ? parsed.origin : `${parsed.protocol}//${parsed.host}`;
}
