import type { PaymentRequirements, ResourceInfo } from "../protocol/index.js";
import { type InferenceRequest, routePathOf } from "./inferenceRequest.js";
import type { ProviderModel } from "./providerModels.js";
import { type QuotedPrice, quotedPriceOf } from "./quotedPrice.js";
import { providerOrigin } from "./spendingPolicy.js";

/** A seller's terms for one route and model, enough to pay without asking first. */
export type KnownQuote = {
  /** The upto offer to sign, but for `amount` (the buyer computes the maximum per request). */
  requirements: PaymentRequirements;
  resource: ResourceInfo;
  price: QuotedPrice;
};

/** How long an authorization signed from `/v1/models` is asked to live, when the listing does not say: the gateway's default. */
const DEFAULT_MAX_TIMEOUT_SECONDS = 300;

/** Prices learned from 402s and from `GET /v1/models`, keyed by route URL (origin + path) and model. */
export type QuoteBook = {
  /** The terms known for this request's route and model (for images, also its size and quality). */
  lookup(url: string, request: InferenceRequest): KnownQuote | undefined;
  /** Learns from an upto offer the seller made for `request`. */
  learnFromOffer(
    url: string,
    request: InferenceRequest,
    offer: PaymentRequirements,
    resource: ResourceInfo,
  ): void;
  learnFromModels(models: readonly ProviderModel[]): void;
  /** The prices the seller's `/v1/models` listing gave this request's route and model, if it was read. */
  listed(url: string, request: InferenceRequest): ListedTerms | undefined;
  /** The fixed (`exact`) price the seller's listing gave this request's route and model, if it listed one. */
  listedExact(url: string, request: InferenceRequest): ListedExact | undefined;
};

/** What a seller's `/v1/models` listing says one model costs: its prices, in which asset on which network. */
export type ListedTerms = { price: QuotedPrice; network: string; asset: string };

/** What a seller's `/v1/models` listing says one request to a model costs at a fixed price, in which asset on which network. */
export type ListedExact = {
  amount: bigint;
  network: string;
  asset: string;
  /** The listing offers the model at this fixed price alone (no other scheme). */
  alone: boolean;
};

export function createQuoteBook(): QuoteBook {
  const quotes = new Map<string, KnownQuote>();
  const listings = new Map<string, ListedTerms>();
  const exactListings = new Map<string, ListedExact>();
  const keyOf = (url: string, model: string) => {
    const parsed = new URL(url);
    return `${providerOrigin(parsed)}${parsed.pathname.replace(/\/+$/, "")}|${model}`;
  };
  return {
    lookup(url, request) {
      const model = modelKeyOf(request);
      return model === undefined ? undefined : quotes.get(keyOf(url, model));
    },
    learnFromOffer(url, request, offer, resource) {
      const price = quotedPriceOf(offer);
      const model = modelKeyOf(request);
      if (offer.scheme !== "upto" || price === undefined || model === undefined) return;
      // A 402 prices this request's output limit; it is the model's own limit only when the
      // request asked for none, or for more than the seller allows.
      const requested = request.requestedOutputTokens;
      const sellerLimit = price.maxOutputTokens;
      const modelLimit =
        requested === undefined || (sellerLimit !== undefined && requested > sellerLimit)
          ? sellerLimit
          : undefined;
      quotes.set(keyOf(url, model), {
        requirements: withModelTerms(offer, modelLimit),
        resource,
        price: { ...price, maxOutputTokens: modelLimit },
      });
    },
    listed(url, request) {
      if (request.model === undefined || request.kind === "image") return undefined;
      return listings.get(keyOf(url, request.model));
    },
    listedExact(url, request) {
      return request.model === undefined ? undefined : exactListings.get(keyOf(url, request.model));
    },
    learnFromModels(models) {
      for (const model of models) {
        // A fixed price is one per request on every API the model serves (an image model's, for its default size).
        for (const api of model.apis) {
          const key = keyOf(`${model.baseUrl}${routePathOf(api)}`, model.id);
          if (model.exactPriceAtomic !== undefined && model.schemes.includes("exact"))
            exactListings.set(key, {
              amount: model.exactPriceAtomic,
              network: model.network,
              asset: model.asset,
              alone: model.schemes.every((scheme) => scheme === "exact"),
            });
          else exactListings.delete(key);
        }
        if (!model.price || !model.schemes.includes("upto") || !model.facilitatorAddress) continue;
        // A request runs at most the seller's listed duration, and never past the authorization's life.
        const timeoutSeconds = model.maxTimeoutSeconds ?? DEFAULT_MAX_TIMEOUT_SECONDS;
        const authorizationMs = timeoutSeconds * 1000;
        const price = {
          ...model.price,
          timeBoundMs: Math.min(model.price.timeBoundMs ?? authorizationMs, authorizationMs),
        };
        // An image's price depends on its size and quality, which a listing does not say.
        for (const api of model.apis.filter((api) => api !== "image")) {
          const url = `${model.baseUrl}${routePathOf(api)}`;
          listings.set(keyOf(url, model.id), { price, network: model.network, asset: model.asset });
          quotes.set(keyOf(url, model.id), {
            requirements: {
              scheme: "upto",
              network: model.network as PaymentRequirements["network"],
              asset: model.asset,
              payTo: model.payTo,
              amount: "0",
              maxTimeoutSeconds: timeoutSeconds,
              extra: {
                facilitatorAddress: model.facilitatorAddress,
                pricing: {
                  model: model.id,
                  inputPerMTokAtomic: model.price.inputPerMTokAtomic.toString(),
                  outputPerMTokAtomic: model.price.outputPerMTokAtomic.toString(),
                  fixedFeeAtomic: model.price.fixedFeeAtomic.toString(),
                  ...(model.price.maxOutputTokens ? { maxOutputTokens: model.price.maxOutputTokens } : {}),
                  ...(model.price.units
                    ? {
                        units: Object.fromEntries(
                          Object.entries(model.price.units).map(([unit, price]) => [unit, price.toString()]),
                        ),
                      }
                    : {}),
                },
              },
            },
            resource: { url, description: `Inference on ${model.id}`, mimeType: "application/json" },
            price,
          });
        }
      }
    },
  };
}

/** What a quote is keyed by besides the route: the model, and for an image its size and quality. */
function modelKeyOf(request: InferenceRequest): string | undefined {
  if (request.model === undefined) return undefined;
  if (request.kind !== "image") return request.model;
  const { size, quality } = request.body;
  return `${request.model}|${typeof size === "string" ? size : ""}|${typeof quality === "string" ? quality : ""}`;
}

/**
 * The offer with its `extra.pricing` cut to the model's terms: the output limit and prompt bound
 * a 402 quotes are that request's, and a later request's offer (from which the buyer checks its
 * charge) must not carry them.
 */
function withModelTerms(offer: PaymentRequirements, modelLimit: number | undefined): PaymentRequirements {
  const pricing = { ...(offer.extra?.pricing as Record<string, unknown>) };
  delete pricing.maxOutputTokens;
  delete pricing.promptTokenBound;
  if (modelLimit !== undefined) pricing.maxOutputTokens = modelLimit;
  return { ...offer, extra: { ...offer.extra, pricing } };
}

/**
 * The asset or network an offer asks to be paid in other than its seller's listing named, or undefined:
 * the listed prices are amounts of the listed token, and the same amount of another is another price.
 */
export function termsOffListing(
  listed: Pick<ListedTerms, "network" | "asset">,
  offer: PaymentRequirements,
): string | undefined {
  if (offer.network !== listed.network) return `on ${offer.network}, listed on ${listed.network}`;
  if (offer.asset.toLowerCase() !== listed.asset.toLowerCase())
    return `in ${offer.asset}, listed in ${listed.asset}`;
  return undefined;
}
