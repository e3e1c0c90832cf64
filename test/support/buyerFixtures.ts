import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BuyerEvent } from "../../src/buyer/index.js";
import { mockModelId } from "./mockBackend.js";

/** A fresh temporary data directory; `remove()` deletes it. */
export async function tempDataDir(): Promise<{ path: string; remove(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), "tollgate-buyer-"));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Collects a paying fetch's events, with typed lookups. */
export function eventLog() {
  const events: BuyerEvent[] = [];
  return {
    events,
    onEvent: (event: BuyerEvent) => {
      events.push(event);
    },
    of<T extends BuyerEvent["type"]>(type: T): Array<Extract<BuyerEvent, { type: T }>> {
      return events.filter((event): event is Extract<BuyerEvent, { type: T }> => event.type === type);
    },
  };
}

/** A chat request body for the mock model. */
export function chatRequest(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "say a few words please" }],
    max_tokens: 64,
    ...extra,
  });
}

/** A `fetch` that records every response status it passes on. */
export function countingFetch(): typeof fetch & { statuses: number[] } {
  const statuses: number[] = [];
  const wrapped = async (input: string | URL | Request, init?: RequestInit) => {
    const response = await fetch(input, init);
    statuses.push(response.status);
    return response;
  };
  return Object.assign(wrapped as typeof fetch, { statuses });
}
