/**
 * A copy of `response` whose body calls `onFirstByte` with the milliseconds from `sentAt`
 * (`performance.now()` when the paid request was sent) to its first non-empty chunk: the time to
 * first token of a stream, the whole generation of a JSON answer. Passes every chunk through
 * untouched; a response without a body is returned as it is.
 */
export function timeFirstByte(
  response: Response,
  { sentAt, onFirstByte }: { sentAt: number; onFirstByte: (elapsedMs: number) => void },
): Response {
  if (!response.body) return response;
  let seen = false;
  const reader = response.body.getReader();
  // Read through a pulled stream, not a pipe: a consumer's cancel then waits until the source
  // underneath (the buyer's receipt tap) has handled it.
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (error) {
          controller.error(error);
          return;
        }
        if (next.done) {
          controller.close();
          return;
        }
        if (!seen && next.value.byteLength > 0) {
          seen = true;
          onFirstByte(performance.now() - sentAt);
        }
        controller.enqueue(next.value);
      },
      async cancel(reason) {
        await reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
