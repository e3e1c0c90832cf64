import type { PromptKind } from "../pricing/index.js";
import { checkOffer } from "./checkOffer.js";
import { describeFetchFailure } from "./describeFetchFailure.js";
import type { InferenceRequest } from "./inferenceRequest.js";
import { pickProvider } from "./pickProvider.js";
import { money, type PolicyRefusal } from "./policyRefusal.js";
import { fetchProviderModels, type ProviderModel } from "./providerModels.js";
import { estimateRequest, type RequestEstimate } from "./quotedPrice.js";
import type { ProviderLatency } from "./SpendStore.js";
import { parseSpendingPolicy, providerOrigin, type SpendingPolicyInput } from "./spendingPolicy.js";

export type ChooseProviderParameters = {
  /** Gateway URLs (`http://host:port` or `…/v1`). */
  gateways: readonly string[];
  /** Acceptable models; any of them will do. */
  models: readonly string[];
  /** The request body to price (its `model` is ignored; each candidate's is used). */
  body: Record<string, unknown>;
  /** Default `chat`. */
  kind?: PromptKind;
  policy?: SpendingPolicyInput | undefined;
  /** Times to first token measured so far (`SpendStore.providerLatencies()`), for `routing.preferFastestWithinPercent`. */
  latencies?: readonly ProviderLatency[] | undefined;
  fetch?: typeof fetch;
};

/** One provider's offer of one acceptable model, priced for this request. */
export type ProviderCandidate = {
  model: ProviderModel;
  origin: string;
  /** What the buyer expects to authorize for this request there (upto maximum or exact price). */
  expectedMaxAtomic: bigint | undefined;
  estimate: RequestEstimate | undefined;
  refusal: PolicyRefusal | undefined;
  /** Smoothed time to first token of earlier paid requests there; undefined when never measured. */
  ttftMs: number | undefined;
};

export type ChooseProviderReturnType = {
  chosen: ProviderCandidate | undefined;
  candidates: ProviderCandidate[];
  /** Gateways whose model list could not be read. */
  unreachable: Array<{ gateway: string; message: string }>;
  /** One sentence for people: which provider, and why. */
  reason: string;
};

/**
 * The router: lists each gateway's models and prices (`GET /v1/models`), prices this request at
 * each that offers an acceptable model (the buyer's own prompt bound and output limit), drops
 * what the policy refuses, and picks the cheapest — or, with `routing.preferFastestWithinPercent`,
 * the fastest measured among those within that margin of the cheapest (see `pickProvider`).
 * @example
 * const { chosen, reason } = await chooseProvider({ gateways, models: ["small", "large"], body });
 */
export async function chooseProvider({
  gateways,
  models,
  body,
  kind = "chat",
  policy: policyInput,
  latencies = [],
  fetch: fetchImpl,
}: ChooseProviderParameters): Promise<ChooseProviderReturnType> {
  const policy = parseSpendingPolicy(policyInput ?? {});
  const unreachable: ChooseProviderReturnType["unreachable"] = [];
  const listings = await Promise.all(
    gateways.map(async (gateway) => {
      try {
        return await fetchProviderModels(gateway, { fetch: fetchImpl });
      } catch (error) {
        unreachable.push({ gateway, message: describeFetchFailure(error) ?? (error as Error).message });
        return [];
      }
    }),
  );
  const candidates: ProviderCandidate[] = [];
  for (const model of listings.flat()) {
    if (!models.includes(model.id) || model.kind !== kind) continue;
    const request: InferenceRequest = {
      kind,
      body: { ...body, model: model.id },
      model: model.id,
      requestedOutputTokens: requestedOutput(body, kind),
      stream: body.stream === true,
    };
    const estimate = model.price ? await estimateRequest(request, model.price) : undefined;
    const expectedMaxAtomic = estimate?.expectedMaxAtomic ?? model.exactPriceAtomic;
    const origin = providerOrigin(model.baseUrl);
    const scheme = estimate ? "upto" : model.exactPriceAtomic !== undefined ? "exact" : "none";
    const refusal =
      expectedMaxAtomic === undefined
        ? { rule: "scheme" as const, message: `${origin} does not price ${model.id} per request`, origin }
        : checkOffer({
            policy,
            origin,
            offer: {
              scheme,
              network: model.network as `${string}:${string}`,
              asset: model.asset,
              payTo: model.payTo,
            },
            askedAtomic: expectedMaxAtomic,
            expectedAtomic: expectedMaxAtomic,
            price: model.price,
          });
    const ttftMs = latencies.find((entry) => entry.origin === origin && entry.model === model.id)?.ttftMs;
    candidates.push({ model, origin, expectedMaxAtomic, estimate, refusal, ttftMs });
  }
  candidates.sort((a, b) => compare(a.expectedMaxAtomic, b.expectedMaxAtomic));
  const allowed = candidates.flatMap((candidate) =>
    !candidate.refusal && candidate.expectedMaxAtomic !== undefined
      ? [
          {
            candidate,
            label: `${candidate.model.baseUrl} ${candidate.model.id}`,
            expectedMaxAtomic: candidate.expectedMaxAtomic,
            ttftMs: candidate.ttftMs,
          },
        ]
      : [],
  );
  const pick = pickProvider({
    allowed,
    preferFastestWithinPercent: policy.routing.preferFastestWithinPercent,
  });
  const chosen = pick.chosen?.candidate;
  return {
    chosen,
    candidates,
    unreachable,
    reason: explain(chosen, pick.why, candidates, unreachable, models, [
      ...new Set(listings.flat().flatMap((model) => (model.kind === kind ? [model.id] : []))),
    ]),
  };
}

function requestedOutput(body: Record<string, unknown>, kind: PromptKind): number | undefined {
  const value = kind === "chat" ? (body.max_completion_tokens ?? body.max_tokens) : body.max_tokens;
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

function compare(a: bigint | undefined, b: bigint | undefined): number {
  if (a === undefined) return b === undefined ? 0 : 1;
  if (b === undefined) return -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function explain(
  chosen: ProviderCandidate | undefined,
  why: string,
  candidates: readonly ProviderCandidate[],
  unreachable: ChooseProviderReturnType["unreachable"],
  models: readonly string[],
  offered: readonly string[],
): string {
  const describe = (candidate: ProviderCandidate) =>
    `${candidate.model.baseUrl} ${candidate.model.id} at most ${
      candidate.expectedMaxAtomic === undefined ? "?" : money(candidate.expectedMaxAtomic)
    }${candidate.ttftMs === undefined ? "" : `, ${Math.round(candidate.ttftMs)} ms TTFT`}${
      candidate.refusal ? ` (refused: ${candidate.refusal.rule})` : ""
    }`;
  const skipped = unreachable.map((entry) => `${entry.gateway} unreachable (${entry.message})`);
  if (!chosen) {
    const seen = [...candidates.map(describe), ...skipped];
    // None offers a model asked for (a typo?): name the ones they do offer.
    const instead =
      candidates.length === 0 && offered.length > 0
        ? `; the gateways offer ${offered.slice(0, 20).join(", ")}${offered.length > 20 ? ", …" : ""}`
        : "";
    return `no provider offers ${models.join(" or ")} within policy${seen.length ? `: ${seen.join("; ")}` : ""}${instead}`;
  }
  const others = candidates.filter((candidate) => candidate !== chosen).map(describe);
  const rest = [...others, ...skipped];
  return `chose ${chosen.model.baseUrl} (${chosen.model.id}): ${why}${rest.length ? `; others: ${rest.join("; ")}` : ""}`;
}
