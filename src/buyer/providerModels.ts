import { z } from "zod";
import { TollgateError } from "../errors/index.js";
import { addressSchema, caip2NetworkSchema } from "../protocol/index.js";
import { describeFetchFailure } from "./describeFetchFailure.js";
import type { InferenceKind } from "./inferenceRequest.js";
import { type QuotedPrice, unitPricesOf } from "./quotedPrice.js";

const atomic = z
  .string()
  .regex(/^[0-9]+$/)
  .transform(BigInt);

const INFERENCE_KINDS = [
  "chat",
  "completion",
  "embedding",
  "messages",
  "responses",
  "image",
  "moderation",
  "rerank",
  "speech",
  "transcription",
] as const;
const isInferenceKind = (value: unknown): value is InferenceKind =>
  (INFERENCE_KINDS as readonly unknown[]).includes(value);

const modelSchema = z.looseObject({
  id: z.string().min(1),
  /** A kind this buyer does not know (a newer API) is kept as unknown: such a model serves none of its routes. */
  kind: z.string().optional(),
  apis: z.array(z.string()).optional(),
  pricing: z
    .looseObject({
      network: caip2NetworkSchema,
      asset: addressSchema,
      payTo: addressSchema,
      schemes: z.array(z.string()).default([]),
      inputPerMTokAtomic: atomic.optional(),
      outputPerMTokAtomic: atomic.optional(),
      fixedFeeAtomic: atomic.optional(),
      exactPriceAtomic: atomic.optional(),
      maxOutputTokens: z.number().int().positive().optional(),
      maxDurationSeconds: z.number().positive().optional(),
      imagePrices: z.record(z.string(), atomic).optional(),
      units: z.record(z.string(), atomic).optional(),
      facilitatorAddress: addressSchema.optional(),
      maxTimeoutSeconds: z.number().int().positive().optional(),
      receiptSigner: addressSchema.optional(),
    })
    .optional(),
});

const modelsSchema = z.looseObject({ data: z.array(z.unknown()) });

/** One model a provider lists, with how it is paid. */
export type ProviderModel = {
  /** The provider's API base, e.g. `http://127.0.0.1:8402/v1`. */
  baseUrl: string;
  id: string;
  /**
   * What the model is for: its listed kind when it serves that API, else the first API it serves
   * (a model behind an Anthropic backend lists kind `chat` and serves only `messages`).
   * Only a `chat` model answers `/chat/completions`; image and embedding models are never chat.
   */
  kind: InferenceKind;
  /** The APIs it serves, each on its own route (`routePathOf`). */
  apis: InferenceKind[];
  network: string;
  asset: string;
  payTo: string;
  schemes: string[];
  /** Per-token prices when the model is offered with upto. */
  price: QuotedPrice | undefined;
  exactPriceAtomic: bigint | undefined;
  /** An image model's price per image, by size (`"1024x1024"`) or size and quality (`"1024x1024/hd"`). */
  imagePrices?: Record<string, bigint> | undefined;
  facilitatorAddress: string | undefined;
  /** How long the seller asks an authorization to live, when its listing says. */
  maxTimeoutSeconds?: number | undefined;
  /** The key that signs this provider's receipts, when it signs them. */
  receiptSigner: string | undefined;
};

/** The API base of a gateway URL: `http://host:port` and `http://host:port/v1/` both give `http://host:port/v1`. */
export function apiBaseUrl(gatewayUrl: string): string {
  const url = new URL(gatewayUrl);
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.origin}${path.endsWith("/v1") ? path : `${path}/v1`}`;
}

/**
 * Lists a provider's models and prices (`GET /v1/models`, Tollgate's `pricing` field). Models
 * without pricing are left out: they cannot be paid for per request. Malformed entries are
 * skipped; an unreachable or malformed listing throws `TOLLGATE_MODEL_UNKNOWN`.
 */
export async function fetchProviderModels(
  gatewayUrl: string,
  { fetch: fetchImpl = fetch, signal }: { fetch?: typeof fetch; signal?: AbortSignal } = {},
): Promise<ProviderModel[]> {
  const baseUrl = apiBaseUrl(gatewayUrl);
  let json: unknown;
  try {
    const get = () => fetchImpl(`${baseUrl}/models`, { headers: { accept: "application/json" }, signal });
    // A GET is safe to send twice: a kept-alive connection the server closed while it sat idle
    // fails the first try with a network error ("fetch failed"), and a fresh connection answers.
    const response = await get().catch((error: unknown) => {
      if (signal?.aborted || !(error instanceof TypeError)) throw error;
      return get();
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    json = await response.json();
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_MODEL_UNKNOWN",
      shortMessage: `cannot list the models of ${baseUrl}: ${describeFetchFailure(cause) ?? (cause as Error).message}`,
      details: { baseUrl },
      cause,
    });
  }
  const listing = modelsSchema.safeParse(json);
  if (!listing.success) {
    throw new TollgateError({
      code: "TOLLGATE_MODEL_UNKNOWN",
      shortMessage: `${baseUrl}/models is not an OpenAI model list`,
      details: { baseUrl },
    });
  }
  const models: ProviderModel[] = [];
  for (const entry of listing.data.data) {
    const parsed = modelSchema.safeParse(entry);
    if (!parsed.success || !parsed.data.pricing) continue;
    const { id, pricing } = parsed.data;
    const listedKind = parsed.data.kind ?? "chat";
    const apis = (parsed.data.apis ?? [listedKind]).filter(isInferenceKind);
    const kind = isInferenceKind(listedKind) && apis.includes(listedKind) ? listedKind : apis[0];
    if (kind === undefined) continue;
    const price =
      pricing.schemes.includes("upto") && (pricing.inputPerMTokAtomic !== undefined || pricing.units)
        ? {
            model: id,
            inputPerMTokAtomic: pricing.inputPerMTokAtomic ?? 0n,
            outputPerMTokAtomic: pricing.outputPerMTokAtomic ?? 0n,
            fixedFeeAtomic: pricing.fixedFeeAtomic ?? 0n,
            maxOutputTokens: pricing.maxOutputTokens,
            units: unitPricesOf(pricing.units),
            timeBoundMs:
              pricing.maxDurationSeconds === undefined
                ? undefined
                : Math.ceil(pricing.maxDurationSeconds * 1000),
          }
        : undefined;
    models.push({
      baseUrl,
      id,
      kind,
      apis,
      network: pricing.network,
      asset: pricing.asset,
      payTo: pricing.payTo,
      schemes: pricing.schemes,
      price,
      exactPriceAtomic: pricing.exactPriceAtomic,
      ...(pricing.imagePrices ? { imagePrices: pricing.imagePrices } : {}),
      facilitatorAddress: pricing.facilitatorAddress,
      maxTimeoutSeconds: pricing.maxTimeoutSeconds,
      receiptSigner: pricing.receiptSigner,
    });
  }
  return models;
}
