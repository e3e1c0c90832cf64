import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";

/** The header that carries one request's id: gateway → client, and gateway → facilitator. */
export const REQUEST_ID_HEADER = "x-request-id";

/** An incoming id is kept when it is this plain: letters, digits and `._:-`, at most 128 characters. */
const wellFormedRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/** The incoming id when it is well formed (so it can go into logs and headers as is), otherwise a new UUID. */
export function requestIdOf(incoming: string | null | undefined): string {
  return typeof incoming === "string" && wellFormedRequestId.test(incoming) ? incoming : randomUUID();
}

const context = new AsyncLocalStorage<{ requestId: string }>();

/** Runs `fn` with `requestId` as the current request's id, for everything it awaits. */
export function runWithRequestId<T>(requestId: string, fn: () => T): T {
  return context.run({ requestId }, fn);
}

/** The id of the request being handled, if any. */
export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId;
}
