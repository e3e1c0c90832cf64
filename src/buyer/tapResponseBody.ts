/** How to watch a body: SSE events one line at a time, or a JSON document once it is complete. */
export type BodyTapMode = "sse" | "json";

export type TapResponseBodyParameters = {
  mode: BodyTapMode;
  /** SSE: each `data:` payload that may carry a receipt or usage (a cheap substring filter). */
  onSseData?: (data: string) => void;
  /** JSON: the body's text once it has all passed (skipped beyond `maxJsonBytes`). */
  onJson?: (text: string) => void;
  /** Awaited when the body ends normally, before the consumer sees its end. */
  onEnd?: () => Promise<void>;
  /** Awaited once when the body stops before its end: the consumer cancelled it, or it failed. */
  onAbort?: () => Promise<void>;
  /** Default 8 MiB. */
  maxJsonBytes?: number;
};

/** An SSE line longer than this is not a receipt; it passes through unexamined. */
const MAX_SSE_LINE = 256 * 1024;
const INTERESTING = /x402_receipt|"usage"/;

/**
 * Passes a response body through untouched, chunk for chunk as it arrives (nothing is held
 * back), while watching a side copy: SSE `data:` lines for the receipt event, or a JSON body's
 * `usage`. Consumer cancellation and errors propagate to the source as with any pipe.
 */
export function tapResponseBody(
  body: ReadableStream<Uint8Array>,
  { mode, onSseData, onJson, onEnd, onAbort, maxJsonBytes = 8 * 1024 * 1024 }: TapResponseBodyParameters,
): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder();
  let line = "";
  let skippingLine = false;
  const jsonChunks: Uint8Array[] = [];
  let jsonBytes = 0;

  const readLines = (text: string, final: boolean) => {
    const parts = text.split(/\r\n|\r|\n/);
    const last = final ? "" : (parts.pop() ?? "");
    for (const part of parts) {
      const complete = line + part;
      line = "";
      if (skippingLine) {
        skippingLine = false;
        continue;
      }
      if (complete.startsWith("data:") && INTERESTING.test(complete)) {
        onSseData?.(complete.slice(complete.startsWith("data: ") ? 6 : 5));
      }
    }
    line += last;
    if (line.length > MAX_SSE_LINE) {
      line = "";
      skippingLine = true;
    }
  };

  const tap = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      if (mode === "sse") readLines(decoder.decode(chunk, { stream: true }), false);
      else if (jsonBytes + chunk.byteLength <= maxJsonBytes) {
        jsonChunks.push(chunk);
        jsonBytes += chunk.byteLength;
      } else jsonBytes = Number.POSITIVE_INFINITY;
    },
    async flush() {
      if (mode === "sse") readLines(decoder.decode(), true);
      else if (Number.isFinite(jsonBytes)) {
        const all = new Uint8Array(jsonBytes);
        let offset = 0;
        for (const chunk of jsonChunks) {
          all.set(chunk, offset);
          offset += chunk.byteLength;
        }
        onJson?.(decoder.decode(all));
      }
      await onEnd?.();
    },
  });
  const piped = body.pipeThrough(tap);
  if (!onAbort) return piped;
  // A TransformStream is not told of its consumer's cancel: read through a stream that is.
  let stopped = false;
  const abort = async () => {
    if (stopped) return;
    stopped = true;
    await onAbort().catch(() => undefined);
  };
  const reader = piped.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (error) {
          await abort();
          controller.error(error);
          return;
        }
        if (next.done) {
          stopped = true;
          controller.close();
        } else controller.enqueue(next.value);
      },
      async cancel(reason) {
        await reader.cancel(reason).catch(() => undefined);
        await abort();
      },
    },
    { highWaterMark: 0 },
  );
}
