import assert from "node:assert/strict";
import { test } from "node:test";
import { type ServerSentEvent, SseDecoder } from "./SseDecoder.js";

function decodeInPieces(pieces: readonly string[]): ServerSentEvent[] {
  const decoder = new SseDecoder();
  return [...pieces.flatMap((piece) => decoder.push(piece)), ...decoder.end()];
}

const stream =
  'data: {"n":1}\n\n' +
  ": keep-alive comment\n\n" +
  'data: {"n":2}\r\n\r\n' +
  "event: note\r" +
  'data: {"n":3}\r\r' +
  "data: [DONE]\n\n";

const expectedData = ['{"n":1}', '{"n":2}', '{"n":3}', "[DONE]"];

test("decodes LF, CRLF and CR line ends, and skips comments", () => {
  const events = decodeInPieces([stream]);
  assert.deepEqual(
    events.map((event) => event.data),
    expectedData,
  );
  assert.equal(events[2]?.event, "note");
  assert.equal(events[0]?.event, "message");
});

test("gives the same events wherever the network splits the bytes", () => {
  for (let cut = 0; cut <= stream.length; cut++) {
    const events = decodeInPieces([stream.slice(0, cut), stream.slice(cut)]);
    assert.deepEqual(
      events.map((event) => event.data),
      expectedData,
      `split at ${cut}`,
    );
  }
  const oneCharAtATime = decodeInPieces([...stream]);
  assert.deepEqual(
    oneCharAtATime.map((event) => event.data),
    expectedData,
  );
});

test("a CRLF split across two reads is one line end, not a blank line", () => {
  const decoder = new SseDecoder();
  assert.deepEqual(decoder.push("data: a\r"), []);
  // Were the "\n" taken as a second line end, "a" would be dispatched here, before "b" joins it.
  assert.deepEqual(decoder.push("\ndata: b\r"), []);
  assert.deepEqual(
    decoder.push("\n\r\n").map((event) => event.data),
    ["a\nb"],
  );
});

test("joins several data lines with a newline", () => {
  const events = decodeInPieces(['data: {"a":\n', "data: 1}\n", "\n"]);
  assert.deepEqual(
    events.map((event) => event.data),
    ['{"a":\n1}'],
  );
  assert.deepEqual(JSON.parse(events[0]?.data ?? ""), { a: 1 });
});

test("takes the value after the colon with at most one space removed", () => {
  const events = decodeInPieces(["data:x\n\n", "data:  y\n\n", "data\n\n"]);
  assert.deepEqual(
    events.map((event) => event.data),
    ["x", " y", ""],
  );
});

test("drops events without data, and keeps the last event id", () => {
  const events = decodeInPieces(["event: ping\n\n", "id: 7\n\n", "data: z\n\n"]);
  assert.deepEqual(events, [{ event: "message", data: "z", id: "7" }]);
});

test("strips a byte order mark at the start only", () => {
  const events = decodeInPieces(["\uFEFFdata: a\n\n", "data: \uFEFFb\n\n"]);
  assert.deepEqual(
    events.map((event) => event.data),
    ["a", "\uFEFFb"],
  );
});

test("dispatches a last event that the backend did not close with a blank line", () => {
  assert.deepEqual(
    decodeInPieces(["data: x\n\ndata: [DONE]"]).map((event) => event.data),
    ["x", "[DONE]"],
  );
  assert.deepEqual(
    decodeInPieces(["data: x\n\ndata: [DONE]\n"]).map((event) => event.data),
    ["x", "[DONE]"],
  );
});
