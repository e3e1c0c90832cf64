import type { Readable } from "node:stream";
import { takeNodeSource } from "../chain/createNodeHttpFetch.js";
import { TollgateError } from "../errors/index.js";

export type GuardBackendBodyParameters = {
  /** Longest silence between two reads (ms). */
  idleMs: number;
  /** `Date.now()` past which the body is cut, however lively (the request's time bound). */
  deadlineAt: number;
  /** For the error message. */
  modelId: string;
};

/**
 * A backend body that cannot hang the gateway: a read that waits longer than `idleMs`, or past
 * `deadlineAt`, fails with TOLLGATE_BACKEND_TIMEOUT and cancels the backend (which stops it).
 * Plain timers, cleared on every read, so the limit holds however long the stream lives.
 */
export function guardBackendBody(
  body: ReadableStream<Uint8Array>,
  { idleMs, deadlineAt, modelId }: GuardBackendBodyParameters,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const untilDeadline = deadlineAt - Date.now();
        const wait = Math.max(0, Math.min(idleMs, untilDeadline));
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), wait);
        });
        try {
          const next = await Promise.race([reader.read(), timedOut]);
          if (next === "timeout") {
            const error = timeoutError({ idleMs, deadlineAt, modelId }, untilDeadline <= idleMs);
            reader.cancel(error).catch(() => undefined);
            controller.error(error);
            return;
          }
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (cause) {
          controller.error(brokeOff(modelId, cause));
        } finally {
          clearTimeout(timer);
        }
      },
      cancel(reason) {
        return reader.cancel(reason).catch(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Reads a whole (non-streaming) backend body as text under the same guard. */
export async function readGuardedText(
  body: ReadableStream<Uint8Array> | null,
  parameters: GuardBackendBodyParameters,
): Promise<string> {
  return new TextDecoder().decode(await readGuardedBytes(body, parameters));
}

/** Reads a whole (non-streaming) backend body as bytes under the same guard (audio, or text to decode). */
export async function readGuardedBytes(
  body: ReadableStream<Uint8Array> | null,
  parameters: GuardBackendBodyParameters,
): Promise<Uint8Array<ArrayBuffer>> {
  if (!body) return new Uint8Array(new ArrayBuffer(0));
  const source = takeNodeSource(body);
  if (source) return readNodeBytes(source, parameters);
  const reader = guardBackendBody(body, parameters).getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    const next = await reader.read();
    if (next.done) break;
    chunks.push(next.value);
  }
  return Buffer.concat(chunks);
}

/** `readGuardedBytes` straight from the Node stream of a body `nodeHttpFetch` made (no web stream). */
function readNodeBytes(
  source: Readable,
  parameters: GuardBackendBodyParameters,
): Promise<Uint8Array<ArrayBuffer>> {
  const { idleMs, deadlineAt } = parameters;
  return new Promise<Uint8Array<ArrayBuffer>>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    let settled = false;
    const settle = (error?: TollgateError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    const arm = () => {
      clearTimeout(timer);
      const untilDeadline = deadlineAt - Date.now();
      timer = setTimeout(
        () => {
          const error = timeoutError(parameters, untilDeadline <= idleMs);
          settle(error);
          source.destroy(error);
        },
        Math.max(0, Math.min(idleMs, untilDeadline)),
      );
    };
    // A connection that died before the body was read emits nothing more: its answer is cut.
    if (source.destroyed) {
      settle(
        brokeOff(
          parameters.modelId,
          source.errored ?? new Error("the connection closed before the answer was read"),
        ),
      );
      return;
    }
    source.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      arm();
    });
    source.once("end", () => settle());
    source.once("error", (cause) => settle(brokeOff(parameters.modelId, cause)));
    source.once("close", () => {
      if (!source.readableEnded) settle(brokeOff(parameters.modelId, new Error("the answer ended early")));
    });
    arm();
  });
}

/** `pastDeadline`: the timer that fired was set for the time bound (the wall clock may read a hair before it). */
function timeoutError({ idleMs, modelId }: GuardBackendBodyParameters, pastDeadline: boolean): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_BACKEND_TIMEOUT",
    shortMessage: pastDeadline
      ? `backend for ${modelId} ran past the request's time bound`
      : `backend for ${modelId} sent nothing for ${idleMs} ms`,
    details: { idleMs, pastDeadline },
  });
}

function brokeOff(modelId: string, cause: unknown): TollgateError {
  return cause instanceof TollgateError
    ? cause
    : new TollgateError({
        code: "TOLLGATE_BACKEND_FAILED",
        shortMessage: `backend for ${modelId} broke off its answer`,
        cause,
      });
}
