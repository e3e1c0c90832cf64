import type { ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { FakeGeneration, FakeServedRequest, FakeServerBehaviour } from "./fakeServerTypes.js";
import type { GenerationRequest } from "./openAiRequests.js";
import { type ResponseIdentity, wireChunk, wireResponse, wireUsage, wireUsageChunk } from "./openAiWire.js";
import { sendJson } from "./sendJson.js";

// Serving one chat or text completion: pacing, output limit, usage, injected failures, client aborts.

/** One generation request being served. */
export type GenerationRun = {
  request: GenerationRequest;
  generation: FakeGeneration;
  behaviour: FakeServerBehaviour;
  response: ServerResponse;
  record: FakeServedRequest;
  closed: AbortSignal;
  identity: ResponseIdentity;
  maxTokens: number | undefined;
  startedAt: number;
};

/** Streams one token per chunk, then the closing chunk, the usage chunk if asked for, and `[DONE]`. */
export async function streamGeneration(run: GenerationRun): Promise<void> {
  const { request, generation, behaviour, response, record, closed, identity } = run;
  const endpoint = request.endpoint;
  const usageRequested = request.body.stream_options?.include_usage === true;
  response.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  record.status = 200;
  response.flushHeaders();

  const sent: string[] = [];
  const write = (payload: unknown) => writeAndWait(response, `data: ${JSON.stringify(payload)}\n\n`, closed);
  const tokens = generation.tokens[Symbol.iterator]();
  let finishReason = "stop";
  for (let next = tokens.next(); !next.done; next = tokens.next()) {
    if (run.maxTokens !== undefined && sent.length >= run.maxTokens) {
      finishReason = "length";
      break;
    }
    if (behaviour.failAfterChunks !== undefined && sent.length >= behaviour.failAfterChunks) {
      dropConnection(response, record);
      return;
    }
    if (!(await sleepUntil(tokenDueAt(run, sent.length), closed))) return;
    const chunk = wireChunk({
      endpoint,
      identity,
      text: next.value,
      first: sent.length === 0,
      finishReason: null,
      usageRequested,
    });
    if (!(await write(chunk))) return;
    sent.push(next.value);
    record.tokensSent = sent.length;
  }
  if (behaviour.failAfterChunks !== undefined && sent.length >= behaviour.failAfterChunks) {
    dropConnection(response, record);
    return;
  }
  const closing = wireChunk({ endpoint, identity, text: "", first: false, finishReason, usageRequested });
  if (!(await write(closing))) return;
  if (usageRequested && behaviour.reportUsage) {
    const usage = wireUsage(generation.promptTokens, completionTokens(generation, sent));
    if (!(await write(wireUsageChunk(endpoint, identity, usage)))) return;
  }
  record.outcome = "completed";
  response.end("data: [DONE]\n\n");
}

/** Generates the whole answer, waits as long as generating it would take, then sends it. */
export async function answerGeneration(run: GenerationRun): Promise<void> {
  const { request, generation, behaviour, response, record, closed, identity } = run;
  const sent: string[] = [];
  let finishReason = "stop";
  for (const token of generation.tokens) {
    if (run.maxTokens !== undefined && sent.length >= run.maxTokens) {
      finishReason = "length";
      break;
    }
    sent.push(token);
  }
  const failAfter = behaviour.failAfterChunks;
  const failing = failAfter !== undefined && sent.length >= failAfter;
  const generatedCount = failing ? failAfter : sent.length;
  if (!(await sleepUntil(tokenDueAt(run, Math.max(0, generatedCount - 1)), closed))) return;
  if (failing) {
    dropConnection(response, record);
    return;
  }
  const usage = behaviour.reportUsage
    ? wireUsage(generation.promptTokens, completionTokens(generation, sent))
    : undefined;
  record.tokensSent = sent.length;
  const answer = wireResponse({
    endpoint: request.endpoint,
    identity,
    text: sent.join(""),
    finishReason,
    usage,
  });
  sendJson(response, record, 200, answer, "completed");
}

function completionTokens(generation: FakeGeneration, sent: readonly string[]): number {
  return generation.countCompletionTokens?.(sent.join("")) ?? sent.length;
}

/** When token `index` (0-based) is due, on the `performance.now()` clock. */
function tokenDueAt(run: GenerationRun, index: number): number {
  const { tokensPerSecond, firstTokenDelayMs } = run.behaviour;
  const generationMs = tokensPerSecond > 0 ? ((index + 1) * 1000) / tokensPerSecond : 0;
  return run.startedAt + firstTokenDelayMs + generationMs;
}

/** Waits until `dueAt`; false if the client went away meanwhile. */
async function sleepUntil(dueAt: number, closed: AbortSignal): Promise<boolean> {
  const waitMs = dueAt - performance.now();
  if (waitMs > 0) {
    try {
      await sleep(waitMs, undefined, { signal: closed });
    } catch {
      return false;
    }
  }
  return !closed.aborted;
}

/** Writes and waits until the bytes are handed to the socket (back-pressure); false if the client left. */
function writeAndWait(response: ServerResponse, text: string, closed: AbortSignal): Promise<boolean> {
  if (closed.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onClose = () => resolve(false);
    closed.addEventListener("abort", onClose, { once: true });
    response.write(text, (error) => {
      closed.removeEventListener("abort", onClose);
      resolve(error === undefined || error === null);
    });
  });
}

/** The injected mid-stream failure: the connection dies with no proper end. */
function dropConnection(response: ServerResponse, record: FakeServedRequest): void {
  record.outcome = "connection-dropped";
  response.socket?.destroy();
}
