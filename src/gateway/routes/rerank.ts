import { rerankPlainTexts, rerankPromptBody } from "../../pricing/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import type { OutputReading, RouteAdapter } from "./RouteAdapter.js";
import { errorOf, refuseStreamedAnswer } from "./readChoices.js";
import { invalidField, pickAllowedFields, readCount, wholeAnswerRequest } from "./requestFields.js";

// The rerank API Jina, Cohere (v2) and vLLM share: `query`, `documents`,
// `top_n`, `return_documents`; results `{ index, relevance_score }`, usage `{ total_tokens }`.

const ALLOWED = new Set(["model", "query", "documents", "top_n", "return_documents"]);
const IGNORED = new Set<string>();

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The documents (of `asked`) an answer ranks: the distinct valid `index`es of results that carry a finite score. */
function documentsRanked(json: unknown, asked: number): number {
  const results = isObject(json) ? json.results : undefined;
  if (!Array.isArray(results)) return 0;
  const ranked = new Set<number>();
  for (const result of results) {
    if (!isObject(result)) continue;
    const { index, relevance_score: score } = result;
    if (typeof score !== "number" || !Number.isFinite(score)) continue;
    if (Number.isSafeInteger(index) && (index as number) >= 0 && (index as number) < asked)
      ranked.add(index as number);
  }
  return ranked.size;
}

/**
 * The backend's usage as the meter reads it: rerank APIs report `total_tokens` (every token is
 * prompt), read as `prompt_tokens` when the backend names no prompt count of its own.
 */
function usageOf(json: unknown): unknown {
  const usage = isObject(json) ? json.usage : undefined;
  if (!isObject(usage) || usage.prompt_tokens !== undefined || usage.total_tokens === undefined) return usage;
  return { ...usage, prompt_tokens: usage.total_tokens };
}

function readRanking(json: unknown): OutputReading {
  const error = errorOf(json);
  const delivered = error === undefined && documentsRanked(json, Number.MAX_SAFE_INTEGER) > 0;
  return {
    pieces: [],
    delivered,
    usage: usageOf(json),
    error: error ?? (delivered ? undefined : "the backend answered no ranked documents"),
  };
}

/** The documents a request has ranked: every one, or its `top_n` best. */
function documentsAsked(fields: Record<string, unknown>): { documents: number; ranked: number } {
  const documents = Array.isArray(fields.documents) ? fields.documents.length : 0;
  const topN = typeof fields.top_n === "number" ? fields.top_n : documents;
  return { documents, ranked: Math.min(topN, documents) };
}

/**
 * `POST /v1/rerank`: a query scored against documents, input tokens (and a per-request fee) only,
 * never streamed. The prompt is the query beside each document; an answer must rank every document
 * asked for (all of them, or `top_n`).
 */
export const rerank: RouteAdapter = {
  kind: "rerank",
  path: "/rerank",
  canStream: false,
  outputTokens: false,
  promptField: "documents",
  chunkObject: "rerank",
  emptyChunkChoice: {},

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/rerank");
    rerankPromptBody(fields);
    if (fields.top_n !== undefined && fields.top_n !== null) readCount(fields.top_n, "top_n", 100_000);
    if (
      fields.return_documents !== undefined &&
      fields.return_documents !== null &&
      typeof fields.return_documents !== "boolean"
    )
      throw invalidField("return_documents", "must be true or false");
    // A cross-encoder cuts each pair to its length limit (512 tokens for many): it may read far less
    // than it was sent, so its count is believed however low, within the bound.
    return wholeAnswerRequest(fields, { promptMayShrink: true });
  },

  prompt(request) {
    return { kind: "embedding", body: rerankPromptBody(request.fields) };
  },

  plainTexts(request) {
    return rerankPlainTexts(request.fields);
  },

  backendBody(request, model: ModelConfig) {
    return { ...request.fields, model: model.backend.model ?? model.id };
  },

  // A backend that streams its answer anyway is not charged: its results cannot be checked whole first.
  readChunk: refuseStreamedAnswer("rankings"),
  readAnswer: readRanking,

  // Every document asked for is charged: an answer that ranks fewer is a failed request.
  missingResults(json, request) {
    const { documents, ranked } = documentsAsked(request.fields);
    const got = documentsRanked(json, documents);
    return got < ranked ? `the backend ranked ${got} of the ${ranked} documents asked for` : undefined;
  },
};
