import { createNodeHttpFetch } from "../chain/index.js";
import { TollgateError } from "../errors/index.js";
import type { ModelConfig } from "./gatewayConfig.js";
import { type RouteAdapter, routes } from "./routes/index.js";

export type ProxyToBackendParameters = {
  model: ModelConfig;
  body: Record<string, unknown>;
  /** The API the request is for; default the model's kind. */
  route?: RouteAdapter;
  /**
   * Aborts the backend request: the `signal` of the paid route's context (Hono, Next), or of
   * `res.locals.tollgate` (Express). A request it aborts before the backend answered fails with
   * TOLLGATE_BACKEND_FAILED whose details say `buyerLeft`, and `promptSent` once the backend had it.
   */
  signal?: AbortSignal;
  /**
   * Called once the whole request went out to the backend: from then on the backend has the prompt,
   * and a buyer that leaves pays for it (the Express adapter's `promptSent`).
   */
  onPromptSent?: () => void;
};

/** Requests to backends: keep-alive connections, bodies streamed as they come. */
const backendFetch = createNodeHttpFetch({ body: "stream", maxSockets: Number.POSITIVE_INFINITY });

/** Backend headers passed on to the buyer. */
const PASSED_HEADERS = ["content-type", "retry-after"];

/**
 * Sends a request to the model's OpenAI-compatible backend and returns its response with the body
 * unread, so a stream passes through chunk by chunk. The wait for the response headers is bounded
 * by `backend.timeoutMs` (TOLLGATE_BACKEND_TIMEOUT); the body is bounded by the billing session. A
 * redirect is refused (TOLLGATE_BACKEND_FAILED, naming the fix) rather than followed.
 * Cancelling the returned body (or `signal`) closes the backend
 * connection, which stops generation.
 */
export async function proxyToBackend({
  model,
  body,
  route = routes[model.kind],
  signal,
  onPromptSent,
}: ProxyToBackendParameters): Promise<Response> {
  const url = `${model.backend.baseUrl.replace(/\/+$/, "")}${route.path}`;
  // A route whose body is not JSON (a transcription's multipart form) encodes its own.
  const encoded = await route.encodeBody?.(body);
  const headers: Record<string, string> = {
    "content-type": encoded?.contentType ?? "application/json",
    // A route that answers bytes (speech's audio) takes the type the backend has for them.
    accept: body.stream === true ? "text/event-stream" : route.readBytes ? "*/*" : "application/json",
  };
  if (route.backendHeaders) Object.assign(headers, route.backendHeaders(model.backend.apiKey));
  else if (model.backend.apiKey) headers.authorization = `Bearer ${model.backend.apiKey}`;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, model.backend.timeoutMs);
  const onClientGone = () => controller.abort();
  signal?.addEventListener("abort", onClientGone, { once: true });
  if (signal?.aborted) controller.abort();
  let response: Response;
  let sent = false;
  try {
    response = await backendFetch(url, {
      method: "POST",
      headers,
      body: encoded?.body ?? JSON.stringify(body),
      signal: controller.signal,
      onSent: () => {
        sent = true;
        onPromptSent?.();
      },
    });
  } catch (cause) {
    // The buyer left while the backend worked: once the whole request was out, the backend has the prompt.
    if (signal?.aborted && !timedOut)
      throw new TollgateError({
        code: "TOLLGATE_BACKEND_FAILED",
        shortMessage: `the buyer left before the backend for ${model.id} answered`,
        details: { url, buyerLeft: true, promptSent: sent },
        cause,
      });
    throw new TollgateError({
      code: timedOut ? "TOLLGATE_BACKEND_TIMEOUT" : "TOLLGATE_BACKEND_FAILED",
      shortMessage: timedOut
        ? `backend for ${model.id} did not answer within ${model.backend.timeoutMs} ms`
        : `backend for ${model.id} is unreachable`,
      details: { url },
      cause,
    });
  } finally {
    clearTimeout(timer);
  }
  // A redirect is not followed (a POST may not survive it): the operator is told where to point instead.
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel().catch(() => undefined);
    throw new TollgateError({
      code: "TOLLGATE_BACKEND_FAILED",
      shortMessage: `backend for ${model.id} answered a redirect (${response.status}), which is not followed: set its backend.baseUrl to the address it redirects to`,
      details: { url, location: response.headers.get("location") },
    });
  }
  const responseHeaders = new Headers();
  for (const name of PASSED_HEADERS) {
    const value = response.headers.get(name);
    if (value) responseHeaders.set(name, value);
  }
  if (responseHeaders.get("content-type")?.includes("text/event-stream"))
    responseHeaders.set("cache-control", "no-cache");
  return new Response(response.body, { status: response.status, headers: responseHeaders });
}
