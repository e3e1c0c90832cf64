import { type PromptKind, promptTokenBound } from "../pricing/index.js";

/** What the buyer knows of an OpenAI-style inference request before it is sent. */
export type InferenceRequest = {
  kind: PromptKind;
  body: Record<string, unknown>;
  model: string | undefined;
  /** The output limit the request asks for (`max_completion_tokens` or `max_tokens`), if any. */
  requestedOutputTokens: number | undefined;
  stream: boolean;
};

/**
 * Reads an inference request from its URL and body: the kind from the path (`/chat/completions`,
 * `/completions`, `/embeddings`) and the JSON body. Anything else answers undefined: it can still
 * be paid for, but the buyer cannot estimate what it should cost.
 */
export function readInferenceRequest(
  url: string,
  bodyText: string | undefined,
): InferenceRequest | undefined {
  const kind = kindOfPath(new URL(url).pathname);
  if (kind === undefined || bodyText === undefined) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    return undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const record = body as Record<string, unknown>;
  const requested = kind === "chat" ? (record.max_completion_tokens ?? record.max_tokens) : record.max_tokens;
  return {
    kind,
    body: record,
    model: typeof record.model === "string" ? record.model : undefined,
    requestedOutputTokens:
      typeof requested === "number" && Number.isSafeInteger(requested) && requested > 0
        ? requested
        : undefined,
    stream: record.stream === true,
  };
}

/** The buyer's own upper bound on the request's prompt tokens, or undefined when it cannot be bounded. */
export function buyerPromptBound(request: InferenceRequest): number | undefined {
  try {
    return promptTokenBound({ kind: request.kind, body: request.body });
  } catch {
    return undefined;
  }
}

function kindOfPath(path: string): PromptKind | undefined {
  if (path.endsWith("/chat/completions")) return "chat";
  if (path.endsWith("/completions")) return "completion";
  if (path.endsWith("/embeddings")) return "embedding";
  return undefined;
}
