import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { readForm } from "../../src/demo/transcriptText.js";

/** What the scripted backend answers to one request: status, headers, and body pieces written in order. */
export type ScriptedAnswer = {
  status?: number;
  headers?: Record<string, string>;
  /** Written one by one, each flushed (text, or bytes as they are). */
  pieces: (string | Uint8Array)[];
  /** Pause between pieces (ms). */
  gapMs?: number;
  /** Piece index → what to wait for before writing that piece (the test lets it go). */
  waitBefore?: Record<number, Promise<unknown>>;
  /** Stops writing once this many pieces are out, and holds the connection open until the client leaves. */
  stallAfter?: number;
  /** Stops writing once this many pieces are out, and drops the connection: a body cut mid-way. */
  breakAfter?: number;
};

export type ScriptedBackend = {
  url: string;
  /** Bodies received, parsed. */
  readonly bodies: Record<string, unknown>[];
  script: (body: Record<string, unknown>) => ScriptedAnswer;
  /** Answers whose client left before they were written whole. */
  readonly cutShort: number;
  close(): Promise<void>;
};

/** A bare OpenAI-shaped backend whose every answer the test writes byte for byte. */
export async function startScriptedBackend(): Promise<ScriptedBackend> {
  const bodies: Record<string, unknown>[] = [];
  let cutShort = 0;
  const backend: ScriptedBackend = {
    url: "",
    bodies,
    get cutShort() {
      return cutShort;
    },
    script: () => ({ pieces: ["{}"] }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    res.on("close", () => {
      if (!res.writableFinished) cutShort++;
    });
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
    });
    req.on("end", async () => {
      const raw = Buffer.concat(chunks);
      const contentType = req.headers["content-type"] ?? "";
      let body: Record<string, unknown> = {};
      try {
        // A multipart form (a transcription) is kept as its fields, a file as its name, type and size.
        body = contentType.startsWith("multipart/form-data")
          ? (await readForm(new Uint8Array(raw), contentType)).fields
          : (JSON.parse(raw.toString("utf8")) as Record<string, unknown>);
      } catch {}
      bodies.push(body);
      const answer = backend.script(body);
      res.writeHead(answer.status ?? 200, answer.headers ?? { "content-type": "application/json" });
      for (const [index, piece] of answer.pieces.entries()) {
        if (index === answer.stallAfter) return;
        if (index === answer.breakAfter) {
          res.destroy();
          return;
        }
        await answer.waitBefore?.[index];
        if (res.destroyed) return;
        res.write(piece);
        if (answer.gapMs) await new Promise((resolve) => setTimeout(resolve, answer.gapMs));
      }
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  backend.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return backend;
}

/** SSE text of chat chunks, then [DONE]. */
export function sseOf(chunks: unknown[]): string[] {
  return [...chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`), "data: [DONE]\n\n"];
}
