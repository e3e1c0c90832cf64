import type { ServerResponse } from "node:http";
import type { FakeGarbage, FakeServedRequest, FakeServerBehaviour } from "./fakeServerTypes.js";
import { type WireUsage, wireError } from "./openAiWire.js";
import { sendJson } from "./sendJson.js";

// The wire side of the misbehaviours a fake server can be told to show (see FakeServerMisbehaviour).

/** The usage a server reports: the true numbers or the override, `prompt_tokens` left out on request. */
export function reportedUsage(
  behaviour: FakeServerBehaviour,
  promptTokens: number,
  completionTokens: number,
): WireUsage {
  const prompt = behaviour.usageOverride?.prompt_tokens ?? promptTokens;
  const completion = behaviour.usageOverride?.completion_tokens ?? completionTokens;
  if (behaviour.reportPromptUsage === false) return { completion_tokens: completion };
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Sends nothing more until the client (or `close()`) ends the connection. */
export function stallUntilClosed(closed: AbortSignal): Promise<void> {
  if (closed.aborted) return Promise.resolve();
  return new Promise((resolve) => closed.addEventListener("abort", () => resolve(), { once: true }));
}

/** 429 with `Retry-After` and the body OpenAI sends when a rate limit is reached. */
export function sendRateLimited(
  response: ServerResponse,
  record: FakeServedRequest,
  retryAfter: string,
): void {
  response.setHeader("retry-after", retryAfter);
  const body = wireError("Rate limit reached (injected)", "requests", "rate_limit_exceeded");
  sendJson(response, record, 429, body, "rejected");
}

/** Whether this garbage replaces the whole answer (any request) rather than spoiling a stream. */
export function isJsonGarbage(garbage: FakeGarbage): garbage is "non_json_200" | "error_object_200" {
  return garbage === "non_json_200" || garbage === "error_object_200";
}

/** A 200 answer that is not a completion: HTML under a JSON content type, or an error object. */
export function sendJsonGarbage(
  response: ServerResponse,
  record: FakeServedRequest,
  garbage: "non_json_200" | "error_object_200",
): void {
  if (garbage === "error_object_200") {
    sendJson(response, record, 200, { error: { message: "overloaded", type: "server_error" } }, "garbage");
    return;
  }
  record.status = 200;
  record.outcome = "garbage";
  response.writeHead(200, { "content-type": "application/json" });
  response.end("<html>oops</html>");
}

/** The error event that ends a spoiled stream. */
export function errorEvent(message: string): string {
  return `data: ${JSON.stringify({ error: { message, type: "server_error" } })}\n\n`;
}

/** The first event of `error_first_event`, exactly. */
export const firstErrorEvent = `data: ${JSON.stringify({ error: { message: "boom" } })}\n\n`;

const malformedSseLines = [
  "data: {not json\n\n",
  ": comment\n\n",
  "garbage line without colon\n\n",
  "event: weird\n\n",
] as const;

/** The junk written after token chunk `chunkCount` (1-based) of a `malformed_sse_lines` stream, in turn. */
export function malformedSseLine(chunkCount: number): string {
  return malformedSseLines[(chunkCount - 1) % malformedSseLines.length] ?? "";
}
