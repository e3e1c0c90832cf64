import assert from "node:assert/strict";
import { test } from "node:test";
import { scriptedFetch } from "../../../test/support/scriptedFetch.js";
import { isTollgateError } from "../../errors/index.js";
import { createUpstreamClient } from "./createUpstreamClient.js";
import type { UpstreamStreamEvent } from "./streamBackendChunks.js";

// Streams fed byte for byte through a scripted fetch: the shapes real backends send on the wire.

const request = { model: "m", messages: [{ role: "user", content: "hi" }] };

function chunk(content: string): string {
  return JSON.stringify({
    id: "c1",
    object: "chat.completion.chunk",
    model: "m",
    choices: [{ index: 0, delta: { content } }],
  });
}

async function read(pieces: ReadonlyArray<string | Uint8Array>, contentType?: string) {
  const fetch = scriptedFetch(pieces, { contentType });
  const client = createUpstreamClient({ baseUrl: "http://backend.invalid/v1", fetch });
  const events: Array<UpstreamStreamEvent<unknown>> = [];
  for await (const event of client.streamChatCompletion(request)) events.push(event);
  return events;
}

async function readError(pieces: ReadonlyArray<string | Uint8Array>, contentType?: string): Promise<unknown> {
  try {
    await read(pieces, contentType);
  } catch (error) {
    return error;
  }
  assert.fail("expected the stream to throw");
}

test("reassembles chunks split mid-line, with CRLF line ends and comment lines between them", async () => {
  const first = chunk("Hel");
  const second = chunk("lo");
  const events = await read([
    ": OPENROUTER PROCESSING\r\n\r\n",
    `data: ${first.slice(0, 10)}`,
    `${first.slice(10)}\r`,
    "\n\r\ndata:",
    ` ${second}\r\n`,
    "\r\ndata: [DONE]\r\n\r\n",
  ]);
  assert.deepEqual(
    events.map((event) => (event.type === "chunk" ? event.raw : event.type)),
    [first, second, "end"],
  );
});

test("keeps a multi-byte character split across two network reads intact", async () => {
  const bytes = new TextEncoder().encode(`data: ${chunk("héllo €")}\n\ndata: [DONE]\n\n`);
  const euro = bytes.indexOf(0xe2);
  const events = await read([bytes.slice(0, euro + 1), bytes.slice(euro + 1)]);
  const first = events[0];
  assert.equal(first?.type === "chunk" ? first.raw : undefined, chunk("héllo €"));
});

test("accepts a chunk spread over several data lines", async () => {
  const events = await read([
    'data: {"id":"c1","model":"m",\n',
    'data: "choices":[{"index":0,"delta":{"content":"x"}}]}\n\n',
    "data: [DONE]\n\n",
  ]);
  const first = events[0];
  assert.equal(first?.type, "chunk");
  assert.equal(first?.type === "chunk" ? first.raw.includes("\n") : false, true);
});

test("ends normally, without the done marker, when the backend just closes", async () => {
  const events = await read([`data: ${chunk("a")}\n\n`]);
  assert.deepEqual(events.at(-1), { type: "end", usage: undefined, chunkCount: 1, receivedDone: false });
});

test("ignores anything after [DONE]", async () => {
  const events = await read([`data: ${chunk("a")}\n\ndata: [DONE]\n\ndata: ${chunk("late")}\n\n`]);
  assert.equal(events.filter((event) => event.type === "chunk").length, 1);
  assert.equal(events.at(-1)?.type, "end");
});

test("takes the last usage the backend sends", async () => {
  const withUsage = (completion: number) =>
    JSON.stringify({
      id: "c",
      model: "m",
      choices: [],
      usage: { prompt_tokens: 2, completion_tokens: completion },
    });
  const events = await read([`data: ${withUsage(1)}\n\ndata: ${withUsage(2)}\n\ndata: [DONE]\n\n`]);
  const end = events.at(-1);
  assert.deepEqual(end?.type === "end" ? end.usage : undefined, { prompt_tokens: 2, completion_tokens: 2 });
});

test("an error event in the stream throws BACKEND_FAILED with the backend's message", async () => {
  const error = await readError([
    `data: ${chunk("a")}\n\n`,
    'data: {"error":{"message":"CUDA out of memory","type":"server_error"}}\n\n',
  ]);
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.match(error.shortMessage, /CUDA out of memory/);
  assert.equal(error.details.chunksDelivered, 1);
  assert.equal(error.details.phase, "mid-stream");
});

test("a chunk that is not JSON throws BACKEND_FAILED", async () => {
  const error = await readError(["data: {not json\n\n"]);
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.equal(error.details.phase, "before-output");
});

test("a chunk of the wrong shape throws BACKEND_FAILED naming the field", async () => {
  const error = await readError(['data: {"choices":[{"delta":{"content":5}}]}\n\n']);
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.match(error.shortMessage, /choices\.0\.delta\.content/);
});

test("a JSON answer to a streaming request throws BACKEND_FAILED", async () => {
  const error = await readError(['{"error":"streaming not supported"}'], "application/json");
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.match(error.shortMessage, /expected an event stream/);
});

test("an HTTP error names the backend's own message", async () => {
  const fetch = scriptedFetch(['{"error":{"message":"model not found","type":"invalid_request_error"}}'], {
    status: 404,
    contentType: "application/json",
  });
  const client = createUpstreamClient({ baseUrl: "http://backend.invalid/v1", fetch });
  try {
    for await (const _event of client.streamChatCompletion(request)) assert.fail("no event expected");
    assert.fail("expected a rejection");
  } catch (error) {
    assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
    assert.equal(error.shortMessage, "Backend answered HTTP 404: model not found");
    assert.equal(error.details.status, 404);
  }
});
