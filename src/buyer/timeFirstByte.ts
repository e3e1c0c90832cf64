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
  const body = response.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        if (!seen && chunk.byteLength > 0) {
          seen = true;
          onFirstByte(performance.now() - sentAt);
        }
        controller.enqueue(chunk);
      },
    }),
  );
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
