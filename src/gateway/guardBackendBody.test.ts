import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { createNodeHttpFetch, takeNodeSource } from "../chain/createNodeHttpFetch.js";
import { isTollgateError } from "../errors/index.js";
import { readGuardedText } from "./guardBackendBody.js";

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

let server: Server;
let url: string;
let handler: Handler = () => {};

before(async () => {
  server = createServer((request, response) => {
    request.resume();
    request.on("end", () => handler(request, response));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const backendFetch = createNodeHttpFetch({ body: "stream" });
const guard = (idleMs = 2_000, deadlineAt = Date.now() + 10_000) => ({ idleMs, deadlineAt, modelId: "m" });
const bodyOf = async () =>
  (await backendFetch(url, { method: "POST", body: "{}" })).body as ReadableStream<Uint8Array>;

/** The backend sends `parts` one by one, `gapMs` apart, then ends (or, with `cut`, drops the connection). */
const sendInParts =
  (parts: Array<string | Buffer>, { gapMs = 10, cut = false } = {}): Handler =>
  (request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    let at = 0;
    const next = () => {
      const part = parts[at++];
      if (part === undefined) {
        if (cut) request.socket.destroy();
        else response.end();
        return;
      }
      response.write(part);
      setTimeout(next, gapMs);
    };
    next();
  };

describe("readGuardedText on a backend body of nodeHttpFetch", () => {
  test("takeNodeSource hands over an unread body's connection once, and never one already read", async () => {
    handler = sendInParts(['{"a":', "1}"]);
    const unread = await bodyOf();
    assert.ok(takeNodeSource(unread), "an unread body's stream is handed over");
    assert.equal(unread.locked, true, "the body is locked: nobody else reads it");
    assert.equal(takeNodeSource(unread), undefined, "and it is handed over only once");

    handler = sendInParts(['{"a":', "1}"]);
    const started = await bodyOf();
    const reader = started.getReader();
    await reader.read();
    reader.releaseLock();
    assert.equal(takeNodeSource(started), undefined, "a body read through its web stream is not");
    assert.equal(await readGuardedText(started, guard()), "1}", "its rest is read through the web stream");
  });

  test("reads the whole answer, characters split across chunks included", async () => {
    const text = '{"content":"péage ✓ 通行料"}';
    const bytes = Buffer.from(text);
    // Cut inside the multi-byte characters.
    handler = sendInParts([bytes.subarray(0, 14), bytes.subarray(14, 22), bytes.subarray(22)]);
    assert.equal(await readGuardedText(await bodyOf(), guard()), text);
  });

  test("a backend silent past the idle limit fails with TOLLGATE_BACKEND_TIMEOUT and its connection is closed", async () => {
    let closed: Promise<unknown> = Promise.resolve();
    handler = (request, response) => {
      closed = once(request.socket, "close");
      response.writeHead(200, { "content-type": "application/json" });
      response.write('{"content":');
    };
    const startedAt = Date.now();
    await assert.rejects(readGuardedText(await bodyOf(), guard(150)), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_TIMEOUT"), String(error));
      assert.match(error.shortMessage, /sent nothing for 150 ms/);
      return true;
    });
    assert.ok(Date.now() - startedAt >= 140, "not before the idle limit");
    await closed;
  });

  test("a lively backend is cut at the request's time bound", async () => {
    handler = sendInParts(
      Array.from({ length: 40 }, () => " "),
      { gapMs: 20 },
    );
    await assert.rejects(
      readGuardedText(await bodyOf(), guard(2_000, Date.now() + 200)),
      (error: unknown) => {
        assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_TIMEOUT"), String(error));
        assert.match(error.shortMessage, /ran past the request's time bound/);
        return true;
      },
    );
  });

  test("a backend that drops the connection mid-answer fails with TOLLGATE_BACKEND_FAILED, never a cut answer", async () => {
    handler = sendInParts(['{"content":"half'], { cut: true });
    await assert.rejects(readGuardedText(await bodyOf(), guard()), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
      assert.match(error.shortMessage, /broke off its answer/);
      return true;
    });
  });

  test("a connection that dies before its body is read fails the read at once, through either path", async () => {
    for (const path of ["handed over", "web stream"] as const) {
      handler = (request, response) => {
        response.writeHead(200, { "content-type": "application/json" });
        response.write('{"content":"half');
        setTimeout(() => request.socket.destroy(), 20);
      };
      const body = await bodyOf();
      // The buyer's payment is checked while the answer waits unread; the backend dies meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 150));
      const startedAt = Date.now();
      const read =
        path === "handed over"
          ? readGuardedText(body, guard(3_000))
          : (async () => {
              const reader = body.getReader();
              for (let next = await reader.read(); !next.done; next = await reader.read());
              return "complete";
            })();
      await assert.rejects(read, (error: unknown) => {
        if (path === "handed over")
          assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
        return true;
      });
      assert.ok(Date.now() - startedAt < 1_000, `${path}: failed at once, not at the idle limit`);
    }
  });
});
