import { TollgateError } from "../errors/index.js";
import {
  completionCount,
  maxAtomicForRequest,
  promptTokenBound,
  resolveOutputLimit,
} from "../pricing/index.js";
import type { ModelConfig } from "./gatewayConfig.js";

/** Which OpenAI-compatible endpoint a request is for. */
export type RouteKind = "chat" | "completion" | "embedding";

/** What one request may cost at most, and the body to send upstream so it cannot cost more. */
export type RequestQuote = {
  model: ModelConfig;
  routeKind: RouteKind;
  stream: boolean;
  promptTokenBound: number;
  /** The output limit authorized and sent to the backend (0 for embeddings). */
  outputLimit: number;
  /** The upto maximum, in atomic units; undefined when the model is exact-only. */
  maxAtomic: bigint | undefined;
  /** The request body for the backend: output limit set, upstream model name, usage in streams. */
  backendBody: Record<string, unknown>;
};

/**
 * Prices one request before it runs: an upper bound on prompt tokens, the output limit
 * (the request's own, capped by the model's), and the maximum they can cost.
 * The same output limit goes to the backend, so usage can never exceed what was authorized.
 */
export function quoteRequest(
  model: ModelConfig,
  routeKind: RouteKind,
  body: Record<string, unknown>,
): RequestQuote {
  if (model.kind !== routeKind) {
    throw new TollgateError({
      code: "TOLLGATE_REQUEST_INVALID",
      shortMessage: `model ${model.id} serves ${model.kind} requests, not ${routeKind}`,
      details: { field: "model" },
    });
  }
  const stream = body.stream === true;
  if (stream && routeKind === "embedding") {
    throw new TollgateError({
      code: "TOLLGATE_REQUEST_INVALID",
      shortMessage: "embeddings cannot stream",
      details: { field: "stream" },
    });
  }
  const bound = promptTokenBound({ kind: routeKind, body, model: model.tokenizer ?? model.id });
  const requested = routeKind === "chat" ? (body.max_completion_tokens ?? body.max_tokens) : body.max_tokens;
  const outputLimit = routeKind === "embedding" ? 0 : resolveOutputLimit(requested, model.maxOutputTokens);
  const maxAtomic =
    model.inputPrice === undefined
      ? undefined
      : maxAtomicForRequest(
          { promptTokenBound: bound, maxOutputTokens: outputLimit * completionCount(routeKind, body) },
          {
            inputPerMTokAtomic: model.inputPrice,
            outputPerMTokAtomic: model.outputPrice ?? 0n,
            fixedFeeAtomic: model.fixedFee,
            maxOutputTokens: model.maxOutputTokens,
          },
        );

  const backendBody: Record<string, unknown> = { ...body, model: model.backend.model ?? model.id };
  if (routeKind === "chat" && body.max_completion_tokens !== undefined) {
    // Keep the field the client chose (reasoning models accept only this one); drop the other.
    delete backendBody.max_tokens;
    backendBody.max_completion_tokens = outputLimit;
  } else if (routeKind !== "embedding") {
    // max_tokens is what every OpenAI-compatible server reads (vLLM, llama.cpp, Ollama).
    delete backendBody.max_completion_tokens;
    backendBody.max_tokens = outputLimit;
  }
  if (stream) {
    const options =
      typeof body.stream_options === "object" && body.stream_options !== null ? body.stream_options : {};
    backendBody.stream_options = { ...options, include_usage: true };
  }
  return { model, routeKind, stream, promptTokenBound: bound, outputLimit, maxAtomic, backendBody };
}
