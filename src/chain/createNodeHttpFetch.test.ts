import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { createPublicClient, HttpRequestError, http, RpcRequestError, TimeoutError } from "viem";
import { createNodeHttpFetch } from "./createNodeHttpFetch.js";
import { isTransportError } from "./rpcFailures.js";

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void;

let server: Server;
let url: string;
let handler: Handler = () => {};

before(async () => {
  server = createServer((request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => {
      body += chunk;
    });
    request.on("end", () => handler(request, body, response));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/rpc`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const jsonRpc = (answer: (request: { id: number; method: string }) => unknown): Handler => {
  return (_request, body, response) => {
    const parsed = JSON.parse(body) as { id: number; method: string };
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ jsonrpc: "2.0", id: parsed.id, ...(answer(parsed) as object) }));
  };
};

const clientOf = (timeout = 2_000) =>
  createPublicClient({ transport: http(url, { fetchFn: createNodeHttpFetch(), timeout, retryCount: 0 }) });

describe("createNodeHttpFetch", () => {
  test("sends the method, headers and body, and returns status, headers and body", async () => {
    let seen: { method?: string; type?: string; body?: string } = {};
    handler = (request, body, response) => {
      seen = { method: request.method, type: request.headers["content-type"], body };
      response.writeHead(201, { "content-type": "text/plain", "x-answer": "42" });
      response.end("créé");
    };
    const response = await createNodeHttpFetch()(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"a":1}',
    });
    assert.deepEqual(seen, { method: "POST", type: "application/json", body: '{"a":1}' });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("x-answer"), "42");
    assert.equal(await response.text(), "créé");
  });

  test("onSent is told once the whole request went out, before the answer; an aborted request is never told", async () => {
    let answer: (() => void) | undefined;
    let received = "";
    handler = (_request, body, response) => {
      received = body;
      answer = () => {
        response.writeHead(200, { "content-type": "text/plain" });
        response.end("ok");
      };
    };
    const order: string[] = [];
    const pending = createNodeHttpFetch({ body: "stream" })(url, {
      method: "POST",
      body: "x".repeat(200_000),
      onSent: () => order.push("sent"),
    });
    while (!answer) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(received.length, 200_000, "the server has the whole body");
    assert.deepEqual(order, ["sent"], "told before the answer came");
    answer();
    assert.equal(await (await pending).text(), "ok");
    assert.deepEqual(order, ["sent"], "told once");

    const aborted = new AbortController();
    aborted.abort(new Error("gone"));
    let told = false;
    await assert.rejects(
      createNodeHttpFetch()(url, {
        method: "POST",
        body: "x",
        signal: aborted.signal,
        onSent: () => (told = true),
      }),
      /gone/,
    );
    assert.equal(told, false);
  });

  test("viem gets the JSON-RPC result through it", async () => {
    handler = jsonRpc(() => ({ result: "0x2a" }));
    assert.equal(await clientOf().getBlockNumber({ cacheTime: 0 }), 42n);
  });

  test("a JSON-RPC error stays an RPC error, not a transport error", async () => {
    handler = jsonRpc(() => ({ error: { code: -32000, message: "execution reverted" } }));
    const error = await clientOf()
      .getBlockNumber({ cacheTime: 0 })
      .catch((e: unknown) => e);
    assert.ok(error instanceof Error);
    assert.equal(isTransportError(error), false);
    let cause: unknown = error;
    while (cause && !(cause instanceof RpcRequestError)) cause = (cause as { cause?: unknown }).cause;
    assert.ok(cause instanceof RpcRequestError, "an RpcRequestError underneath");
  });

  test("an unreachable RPC is a transport error", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const client = createPublicClient({
      transport: http(`http://127.0.0.1:${port}/`, { fetchFn: createNodeHttpFetch(), retryCount: 0 }),
    });
    const error = await client.getBlockNumber({ cacheTime: 0 }).catch((e: unknown) => e);
    assert.ok(error instanceof HttpRequestError || (error as Error).cause instanceof HttpRequestError);
    assert.equal(isTransportError(error), true);
  });

  test("viem's timeout aborts the request and reports a timeout", async () => {
    handler = () => {}; // never answers
    const startedAt = performance.now();
    const error = await clientOf(150)
      .getBlockNumber({ cacheTime: 0 })
      .catch((e: unknown) => e);
    assert.ok(performance.now() - startedAt < 30_000, "did not wait for the server");
    let cause: unknown = error;
    while (cause && !(cause instanceof TimeoutError)) cause = (cause as { cause?: unknown }).cause;
    assert.ok(cause instanceof TimeoutError, "a TimeoutError underneath");
    assert.equal(isTransportError(error), true);
  });

  test("refuses a response body above the limit", async () => {
    handler = (_request, _body, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end("x".repeat(2_000));
    };
    await assert.rejects(
      createNodeHttpFetch({ maxResponseBytes: 1_000 })(url, { method: "POST", body: "{}" }),
      RangeError,
    );
  });

  test("an already aborted signal sends nothing", async () => {
    let calls = 0;
    handler = (_request, _body, response) => {
      calls++;
      response.end();
    };
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await assert.rejects(
      createNodeHttpFetch()(url, { method: "POST", body: "{}", signal: controller.signal }),
      /stop/,
    );
    assert.equal(calls, 0);
  });

  describe('body: "stream"', () => {
    const streaming = createNodeHttpFetch({ body: "stream" });

    /** The server opens an event stream, sends one chunk and keeps it open; resolves when its connection closes. */
    const openStreamOfOneChunk = () => {
      let closed: Promise<unknown> = Promise.resolve();
      handler = (request, _body, response) => {
        closed = once(request.socket, "close");
        response.writeHead(200, { "content-type": "text/event-stream" });
        response.write("data: 1\n\n");
      };
      return () => closed;
    };

    test("resolves at the headers and hands each chunk on as it arrives", async () => {
      let release: () => void = () => {};
      handler = (_request, _body, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" });
        response.write("data: 1\n\n");
        release = () => response.end("data: 2\n\n");
      };
      const response = await streaming(url, { method: "POST", body: "{}" });
      assert.equal(response.headers.get("content-type"), "text/event-stream");
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const first = await reader.read();
      assert.equal(
        new TextDecoder().decode(first.value),
        "data: 1\n\n",
        "the first chunk came before the end",
      );
      release();
      let rest = "";
      for (let next = await reader.read(); !next.done; next = await reader.read())
        rest += new TextDecoder().decode(next.value);
      assert.equal(rest, "data: 2\n\n");
    });

    test("undoes a gzip content-encoding, as fetch does", async () => {
      handler = (_request, _body, response) => {
        const zipped = gzipSync('{"answer":"compressed"}');
        response.writeHead(200, {
          "content-type": "application/json",
          "content-encoding": "gzip",
          "content-length": String(zipped.length),
        });
        response.end(zipped);
      };
      const response = await streaming(url, { method: "POST", body: "{}" });
      assert.equal(response.headers.get("content-encoding"), null);
      assert.deepEqual(await response.json(), { answer: "compressed" });
    });

    test("cancelling the body closes the connection (the backend stops generating)", async () => {
      const closed = openStreamOfOneChunk();
      const response = await streaming(url, { method: "POST", body: "{}" });
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      await reader.cancel("the buyer left");
      await closed();
    });

    test("an abort after the headers fails the body's read and closes the connection", async () => {
      const closed = openStreamOfOneChunk();
      const controller = new AbortController();
      const response = await streaming(url, { method: "POST", body: "{}", signal: controller.signal });
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      controller.abort(new Error("client gone"));
      await assert.rejects(async () => {
        for (let next = await reader.read(); !next.done; next = await reader.read());
      }, /aborted/);
      await closed();
    });

    test("a backend that closes mid-answer fails the body's read: a cut answer never reads as complete", async () => {
      for (const headers of [
        { "content-type": "text/event-stream" },
        { "content-type": "application/json", "content-length": "100" },
        { "content-type": "application/json", "content-encoding": "gzip" },
      ]) {
        handler = (request, _body, response) => {
          response.writeHead(200, headers);
          const zipped = gzipSync('{"answer":"cut short"}');
          response.write(headers["content-encoding"] ? zipped.subarray(0, zipped.length - 8) : '{"answer":');
          setTimeout(() => request.socket.destroy(), 20);
        };
        const response = await streaming(url, { method: "POST", body: "{}" });
        await assert.rejects(response.text(), /aborted/, JSON.stringify(headers));
      }
    });

    test("a connection reset before the answer fails the request, which is not sent again", async () => {
      let received = 0;
      handler = (request) => {
        received++;
        request.socket.destroy();
      };
      await assert.rejects(streaming(url, { method: "POST", body: "{}" }), /socket hang up|ECONNRESET/);
      // Once more on a kept-alive connection, the case a resend would be tempted by.
      handler = (_request, _body, response) => {
        received++;
        response.end("{}");
      };
      await (await streaming(url, { method: "POST", body: "{}" })).text();
      handler = (request) => {
        received++;
        request.socket.destroy();
      };
      await assert.rejects(streaming(url, { method: "POST", body: "{}" }), /socket hang up|ECONNRESET/);
      assert.equal(received, 3, "each request reached the server once");
    });

    test("an idle kept-alive connection is closed after idleSocketMs", async () => {
      let closed: Promise<unknown> = Promise.resolve();
      handler = (request, _body, response) => {
        closed = once(request.socket, "close");
        response.end("{}");
      };
      // The server would keep the connection two minutes: only the client can close it sooner, and
      // before 3 s only through idleSocketMs (the default is 4 s).
      const keepAliveTimeout = server.keepAliveTimeout;
      server.keepAliveTimeout = 120_000;
      try {
        const quick = createNodeHttpFetch({ body: "stream", idleSocketMs: 100 });
        await (await quick(url, { method: "POST", body: "{}" })).text();
        const gaveUp = new Promise((resolve) => setTimeout(resolve, 3_000, "open").unref());
        assert.notEqual(
          await Promise.race([closed, gaveUp]),
          "open",
          "closed by the client after idleSocketMs",
        );
      } finally {
        server.keepAliveTimeout = keepAliveTimeout;
      }
    });
  });
});
