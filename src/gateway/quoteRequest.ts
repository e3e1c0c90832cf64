import { TollgateError } from "../errors/index.js";
import {
  maxCostOfUnits,
  type PromptTokenBoundParameters,
  promptTokenBound,
  resolveOutputLimit,
  tokenizerForModel,
  type UnitPrices,
  type UsageBound,
} from "../pricing/index.js";
import type { ModelConfig } from "./gatewayConfig.js";
import { modelUnitPrices } from "./modelUnitPrices.js";
import { type RouteAdapter, type RouteKind, type RouteRequest, routes } from "./routes/index.js";
import { pricingOf } from "./routes/requestFields.js";

export type { RouteKind } from "./routes/index.js";

/** What one request may cost at most, the exact body the backend gets, and how long it may run. */
export type RequestQuote = {
  model: ModelConfig;
  route: RouteAdapter;
  routeKind: RouteKind;
  request: RouteRequest;
  stream: boolean;
  /** What the model reads, as the pricing bounds and counts it for this model (its tokenizer, its image tokens). */
  prompt: PromptTokenBoundParameters;
  promptTokenBound: number;
  /** The output limit per choice, authorized and sent to the backend (0 for embeddings). */
  outputLimit: number;
  /** Choices generated, each up to the output limit. */
  choices: number;
  /** The output authorized in all: output limit × choices. */
  maxOutputTokens: number;
  /** The model's upto price per unit; undefined when the model is exact-only. */
  prices: UnitPrices | undefined;
  /** The most this request may use in each unit: the maximum prices it. */
  usageBound: UsageBound;
  /** The upto maximum, in atomic units; undefined when the model is exact-only. */
  maxAtomic: bigint | undefined;
  /** Why the fixed price does not cover this request; undefined when it does (or there is none). */
  exactRefusal: string | undefined;
  /** The request field the fixed price's refusal names (`n`, the prompt's field). */
  exactRefusalField?: string | undefined;
  /** Longest the request may take from the backend call to its last byte (ms): an authorization must outlive it. */
  timeBoundMs: number;
  /** The body for the backend, rebuilt from the route's allow-list with the output limit set. */
  backendBody: Record<string, unknown>;
};

/**
 * Prices one request before it runs: the route reads it (unknown fields refused), bounds its
 * prompt, resolves the output limit (the request's own, capped by the model's) times its choices,
 * and builds the only body the backend will see, so usage cannot exceed what was authorized.
 * Rejects with TOLLGATE_REQUEST_INVALID, naming the field, for a request it cannot price.
 */
export async function quoteRequest(
  model: ModelConfig,
  routeKind: RouteKind,
  body: Record<string, unknown>,
): Promise<RequestQuote> {
  const apis: readonly RouteKind[] = model.backend.apis ?? [model.kind];
  if (!apis.includes(routeKind)) {
    throw new TollgateError({
      code: "TOLLGATE_REQUEST_INVALID",
      shortMessage: `model ${model.id} serves ${apis.join(", ")} requests, not ${routeKind}`,
      details: { field: "model" },
    });
  }
  const route = routes[routeKind];
  const request = route.readRequest(body);
  const prompt: PromptTokenBoundParameters = { ...route.prompt(request), ...pricingOf(model) };
  const bound = await promptTokenBound(prompt);
  const outputLimit = route.canStream
    ? resolveOutputLimit(request.requestedOutputTokens, model.maxOutputTokens, {
        field:
          request.fields.max_completion_tokens !== undefined
            ? "max_completion_tokens"
            : request.fields.max_output_tokens !== undefined
              ? "max_output_tokens"
              : "max_tokens",
      })
    : 0;
  const maxOutputTokens = outputLimit * request.choices;
  // A stream cannot outlast its output: each token may take at most the backend's idle timeout.
  const timeBoundMs = Math.min(
    model.backend.maxDurationSeconds * 1000,
    model.backend.timeoutMs * (maxOutputTokens + 2),
  );
  const modelPrices = modelUnitPrices(model);
  const prices =
    modelPrices && route.requestPrices ? route.requestPrices(request, model, modelPrices) : modelPrices;
  const usageBound: UsageBound = {
    inputTokens: bound,
    outputTokens: maxOutputTokens,
    ...(request.images !== undefined ? { images: request.images } : {}),
    ...(request.inputCharacters !== undefined ? { inputCharacters: request.inputCharacters } : {}),
    ...(request.inputAudioSeconds !== undefined ? { inputAudioSeconds: request.inputAudioSeconds } : {}),
    ...(prices?.compute_ms !== undefined ? { computeMs: timeBoundMs } : {}),
  };
  const maxAtomic = prices === undefined ? undefined : maxCostOfUnits(usageBound, prices);
  const refusal = exactRefusalOf(model, route, request, bound);
  if (maxAtomic === undefined && refusal !== undefined) throw exactPriceRefusal(model, refusal);
  const exactRefusal = refusal?.reason;
  return {
    model,
    route,
    routeKind,
    request,
    stream: request.stream,
    prompt,
    promptTokenBound: bound,
    outputLimit,
    choices: request.choices,
    maxOutputTokens,
    prices,
    usageBound,
    maxAtomic,
    exactRefusal,
    exactRefusalField: refusal?.field,
    timeBoundMs,
    backendBody: route.backendBody(request, model, outputLimit),
  };
}

/** The gateway knows the model's tokenizer exactly (output counts are exact, not estimates). */
export function hasExactTokenizer(model: ModelConfig): boolean {
  return tokenizerForModel(model.tokenizer ?? model.id) !== "bytes";
}

/** A request the model's fixed price does not cover, where no other price is offered: a 400 naming the field. */
export function exactPriceRefusal(
  model: ModelConfig,
  refusal: { reason: string; field?: string | undefined },
) {
  return new TollgateError({
    code: "TOLLGATE_REQUEST_INVALID",
    shortMessage: `model ${model.id} has a fixed price that covers ${refusal.reason}`,
    details: { field: refusal.field },
  });
}

/** Why the model's fixed price does not cover this request, naming the field to change; undefined when it does. */
function exactRefusalOf(
  model: ModelConfig,
  route: RouteAdapter,
  request: RouteRequest,
  promptTokenBound: number,
): { reason: string; field: string } | undefined {
  if (model.exactPrice === undefined) return undefined;
  if (promptTokenBound > model.exactMaxPromptTokens)
    return {
      reason: `at most ${model.exactMaxPromptTokens} prompt tokens; this prompt may count ${promptTokenBound}: shorten it`,
      field: route.promptField,
    };
  // Each choice, and each image, is output the fixed price pays for once.
  const outputs = Math.max(request.choices, request.images ?? 0);
  if (outputs > model.exactMaxChoices)
    return {
      reason: `at most ${model.exactMaxChoices} ${request.images === undefined ? "choice(s)" : "image(s)"} per request; this one asks for ${outputs}: lower n${request.images === undefined ? " / best_of" : ""}`,
      field: "n",
    };
  return route.exactRefusal?.(request, model);
}
