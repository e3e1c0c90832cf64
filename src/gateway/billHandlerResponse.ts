import type { BillingSession } from "./createBillingSession.js";
import { readGuardedText } from "./guardBackendBody.js";
import type { RequestQuote } from "./quoteRequest.js";

/**
 * Bills a paid route handler's answer (standard `Response`): an error answer is not charged; a stream is
 * metered as it is forwarded and ends with the receipt event; a JSON answer is metered, settled and gets the
 * `PAYMENT-RESPONSE` header. Whether it is a stream is decided by the answer, not guessed from the request.
 */
export async function billHandlerResponse(
  session: BillingSession,
  quote: RequestQuote,
  response: Response,
): Promise<Response> {
  if (response.status >= 400) {
    await session.failBeforeOutput(`backend answered ${response.status}`, response.status);
    return response;
  }
  const contentType = response.headers.get("content-type") ?? "";
  if (response.body && contentType.includes("text/event-stream")) {
    const headers = new Headers(response.headers);
    headers.delete("content-length");
    return new Response(session.meterStream(response.body), { status: response.status, headers });
  }
  let text: string;
  try {
    text = await readGuardedText(response.body, {
      idleMs: quote.model.backend.timeoutMs,
      deadlineAt: session.deadlineAt,
      modelId: quote.model.id,
    });
  } catch (error) {
    await session.failBeforeOutput(String(error));
    throw error;
  }
  const completed = await session.completeJson(text);
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
