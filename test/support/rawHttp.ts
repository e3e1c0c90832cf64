import { connect } from "node:net";

/** The body of a raw HTTP/1.1 answer sent with `transfer-encoding: chunked`, as text. */
export function unchunk(raw: Buffer): string {
  let at = raw.indexOf("\r\n\r\n") + 4;
  const parts: Buffer[] = [];
  for (;;) {
    const lineEnd = raw.indexOf("\r\n", at);
    const size = Number.parseInt(raw.subarray(at, lineEnd).toString("latin1"), 16);
    if (!(size > 0)) break;
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts).toString("utf8");
}

/** The chat-completion chunks of an SSE text that carry content: with the mock backend, one token each. */
export function contentChunks(text: string): number {
  return text
    .split("\n")
    .filter((line) => line.startsWith("data: {"))
    .map((line) => JSON.parse(line.slice(6)) as { choices?: { delta?: { content?: string } }[] })
    .filter((chunk) => chunk.choices?.[0]?.delta?.content).length;
}

/**
 * Sends a POST over a raw socket and reads none of the answer, so the server's writes back up;
 * `readRest` starts reading and resolves with the whole raw answer once the server closes.
 */
export function postWithoutReading(
  port: number,
  path: string,
  body: string,
  headers: Record<string, string>,
): { readRest(): Promise<Buffer> } {
  const socket = connect(port, "127.0.0.1");
  socket.pause();
  const received: Buffer[] = [];
  const ended = new Promise<void>((resolve) => socket.on("end", resolve));
  socket.on("data", (chunk: Buffer) => received.push(chunk));
  socket.write(
    [
      `POST ${path} HTTP/1.1`,
      "host: 127.0.0.1",
      "content-type: application/json",
      `content-length: ${Buffer.byteLength(body)}`,
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
      "connection: close",
      "",
      body,
    ].join("\r\n"),
  );
  return {
    async readRest() {
      socket.resume();
      await ended;
      return Buffer.concat(received);
    },
  };
}
