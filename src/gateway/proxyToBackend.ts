import { TollgateError } from "../errors/index.js";
import type { ModelConfig } from "./gatewayConfig.js";

const pathOf = { chat: "/chat/completions", completion: "/completions", embedding: "/embeddings" } as const;

export type ProxyToBackendParameters = {
  model: ModelConfig;
  body: Record<string, unknown>;
  /** Aborts the backend request (the buyer left). */
  signal?: AbortSignal;
};

/**
 * Sends a request to the model's OpenAI-compatible backend and returns its response as is,
 * body unread, so a stream passes through chunk by chunk. Cancelling the returned body (or
 * `signal`) closes the backend connection, which stops generation.
 */
export async function proxyToBackend({ model, body, signal }: ProxyToBackendParameters): Promise<Response> {
  const url = `${model.backend.baseUrl.replace(/\/+$/, "")}${pathOf[model.kind]}`;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: body.stream ? "text/event-stream" : "application/json",
  };
  if (model.backend.apiKey) headers.authorization = `Bearer ${model.backend.apiKey}`;
  const timeout = AbortSignal.timeout(model.backend.timeoutMs);
  try {
    const response = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    const responseHeaders = new Headers();
    const contentType = response.headers.get("content-type");
    if (contentType) responseHeaders.set("content-type", contentType);
    if (contentType?.includes("text/event-stream")) responseHeaders.set("cache-control", "no-cache");
    return new Response(response.body, { status: response.status, headers: responseHeaders });
  } catch (cause) {
    const timedOut = (cause as Error).name === "TimeoutError";
    throw new TollgateError({
      code: timedOut ? "TOLLGATE_BACKEND_TIMEOUT" : "TOLLGATE_BACKEND_FAILED",
      shortMessage: timedOut
        ? `backend for ${model.id} did not answer in time`
        : `backend for ${model.id} is unreachable`,
      details: { url },
      cause,
    });
  }
}
