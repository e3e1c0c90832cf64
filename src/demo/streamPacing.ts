import type { ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { FakeServedRequest, FakeServerBehaviour } from "./fakeServerTypes.js";

// How every fake route paces its tokens and writes its stream: one clock, back-pressure, client aborts.

/** How fast a fake backend generates. */
export type TokenPacing = Pick<FakeServerBehaviour, "tokensPerSecond" | "firstTokenDelayMs">;

/** When token position `index` (0-based) is due, on the `performance.now()` clock. */
export function tokenDueAt(pacing: TokenPacing, startedAt: number, index: number): number {
  const { tokensPerSecond, firstTokenDelayMs } = pacing;
  const generationMs = tokensPerSecond > 0 ? ((index + 1) * 1000) / tokensPerSecond : 0;
  return startedAt + firstTokenDelayMs + generationMs;
}

/** Waits until `dueAt`; false if the client went away meanwhile. */
export async function sleepUntil(dueAt: number, closed: AbortSignal): Promise<boolean> {
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
export function writeAndWait(response: ServerResponse, text: string, closed: AbortSignal): Promise<boolean> {
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
export function dropConnection(response: ServerResponse, record: FakeServedRequest): void {
  record.outcome = "connection-dropped";
  response.socket?.destroy();
}

/** The generated tokens, at most `limit` of them. */
export function takeTokens(tokens: Iterable<string>, limit: number): string[] {
  const taken: string[] = [];
  for (const token of tokens) {
    if (taken.length >= limit) break;
    taken.push(token);
  }
  return taken;
}

/** Opens a 200 event stream (the Messages and Responses APIs' headers). */
export function startEventStream(response: ServerResponse, record: FakeServedRequest): void {
  response.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
  });
  record.status = 200;
  record.stream = true;
  response.flushHeaders();
}

export type StreamTokensParameters = {
  tokens: readonly string[];
  behaviour: FakeServerBehaviour;
  startedAt: number;
  response: ServerResponse;
  record: FakeServedRequest;
  closed: AbortSignal;
  /** Writes one token's event; false if the client left. */
  sendToken: (token: string) => Promise<boolean>;
};

/**
 * Sends one event per token, each when it is due, counting them in `record.tokensSent`, and drops
 * the connection at `failAfterChunks`. True when every token went out; false when the stream ended.
 */
export async function streamTokens({
  tokens,
  behaviour,
  startedAt,
  response,
  record,
  closed,
  sendToken,
}: StreamTokensParameters): Promise<boolean> {
  for (const [index, token] of tokens.entries()) {
    if (behaviour.failAfterChunks !== undefined && index >= behaviour.failAfterChunks) {
      dropConnection(response, record);
      return false;
    }
    if (!(await sleepUntil(tokenDueAt(behaviour, startedAt, index), closed))) return false;
    if (!(await sendToken(token))) return false;
    record.tokensSent = index + 1;
  }
  return true;
}
