import { isTollgateError } from "../errors/index.js";
import type { BillingSession } from "./createBillingSession.js";
import { errorAnswer } from "./errorAnswer.js";
import { readGuardedBytes } from "./guardBackendBody.js";
import type { RequestQuote } from "./quoteRequest.js";

/**
 * Bills a paid route handler that threw: nothing is charged, unless the buyer left (`buyerGone`) once
 * `proxyToBackend` had sent the backend the whole request: then the buyer pays for its prompt, as one
 * that leaves a stream before its first token does.
 */
export async function billHandlerFailure(
  session: BillingSession,
  error: unknown,
  buyerGone: AbortSignal | undefined,
): Promise<void> {
  if (
    buyerGone?.aborted === true &&
    isTollgateError(error, "TOLLGATE_BACKEND_FAILED") &&
    error.details.promptSent === true
  )
    await session.leftAfterPrompt();
  else await session.failBeforeOutput(String(error), 500);
}

/**
 * Bills a paid route handler's answer (standard `Response`): an error answer is not charged; a stream is
 * metered as it is forwarded and ends with the receipt event; a JSON answer is metered, settled and gets the
 * `PAYMENT-RESPONSE` header; a route's answer of bytes (speech's audio) is read whole, charged when it
 * delivered, and forwarded byte for byte with its content type. Whether it is a stream is decided by the
 * answer, not guessed from the request.
 * A buyer gone (`buyerGone`) once the handler answered, or while its JSON answer was read, pays for its
 * prompt: the backend had it.
 */
export async function billHandlerResponse(
  session: BillingSession,
  quote: RequestQuote,
  response: Response,
  buyerGone?: AbortSignal,
): Promise<Response> {
  if (buyerGone?.aborted && response.status < 400) {
    await response.body?.cancel().catch(() => undefined);
    await session.leftAfterPrompt();
    return response;
  }
  const contentType = response.headers.get("content-type") ?? "";
  // A route that answers bytes (speech's audio) reads them whole, whatever the backend labelled them.
  const answersBytes = quote.route.readBytes !== undefined;
  if (response.status >= 400) {
    await session.failBeforeOutput(`backend answered ${response.status}`, response.status);
    // An error answer is not charged: one that is not an error's JSON (audio under a 500) is not forwarded.
    if (answersBytes && !isJsonType(contentType)) {
      await response.body?.cancel().catch(() => undefined);
      return backendErrorAnswer(response.status);
    }
    return response;
  }
  if (!answersBytes && response.body && contentType.includes("text/event-stream")) {
    const headers = new Headers(response.headers);
    headers.delete("content-length");
    return new Response(session.meterStream(response.body), { status: response.status, headers });
  }
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await readGuardedBytes(response.body, {
      idleMs: quote.model.backend.timeoutMs,
      deadlineAt: session.deadlineAt,
      modelId: quote.model.id,
    });
  } catch (error) {
    if (buyerGone?.aborted) await session.leftAfterPrompt();
    else await session.failBeforeOutput(String(error));
    throw error;
  }
  const completed = answersBytes
    ? await session.completeBytes(bytes, contentType)
    : await session.completeJson(new TextDecoder().decode(bytes));
  if (!completed.ok) {
    return new Response(JSON.stringify(completed.body), {
      status: completed.status,
      headers: { "content-type": "application/json" },
    });
  }
  const merged = new Headers(response.headers);
  merged.delete("content-length");
  merged.set("content-type", "application/json");
  for (const [name, value] of Object.entries(completed.headers)) merged.set(name, value);
  return new Response(completed.body, { status: response.status, headers: merged });
}

const isJsonType = (contentType: string) => /^\s*[^;]*[/+]json\b/i.test(contentType);

/** The gateway's own words for a backend's error answer it does not forward (`TOLLGATE_BACKEND_FAILED`). */
function backendErrorAnswer(status: number): Response {
  const answer = errorAnswer("TOLLGATE_BACKEND_FAILED", `the backend answered ${status}; nothing is charged`);
  return new Response(JSON.stringify(answer.body), {
    status: answer.status,
    headers: { ...answer.headers, "content-type": "application/json" },
  });
}
