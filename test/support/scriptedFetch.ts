/** What a scripted fetch saw of one call. */
export type ScriptedCall = { url: string; init: RequestInit | undefined; body: unknown };

/**
 * A `fetch` that answers every call with the given body pieces, delivered one network read each,
 * so tests can feed a client exact bytes (split lines, CRLF, comments) without a server.
 *
 * @example
 * const fetch = scriptedFetch(["data: {\"a\"", ":1}\n\n"], { contentType: "text/event-stream" });
 */
export function scriptedFetch(
  pieces: ReadonlyArray<string | Uint8Array>,
  options: { status?: number; contentType?: string } = {},
): typeof globalThis.fetch & { calls: ScriptedCall[] } {
  const calls: ScriptedCall[] = [];
  const encoder = new TextEncoder();
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    calls.push({ url: String(input), init, body });
    init?.signal?.throwIfAborted();
    let index = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const piece = pieces[index++];
        if (piece === undefined) controller.close();
        else controller.enqueue(typeof piece === "string" ? encoder.encode(piece) : piece);
      },
    });
    return new Response(stream, {
      status: options.status ?? 200,
      headers: { "content-type": options.contentType ?? "text/event-stream" },
    });
  };
  return Object.assign(fetch as typeof globalThis.fetch, { calls });
}
