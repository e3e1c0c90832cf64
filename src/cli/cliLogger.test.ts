import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { createCliLogger, printError } from "./cliSupport.js";

/** A logger writing into a buffer, and the lines written. */
function captured(readable: boolean) {
  const destination = new PassThrough();
  const chunks: Buffer[] = [];
  destination.on("data", (chunk: Buffer) => chunks.push(chunk));
  const logger = createCliLogger("info", { readable, destination });
  const lines = async () => {
    await new Promise((resolve) => setImmediate(resolve));
    return Buffer.concat(chunks).toString("utf8").trim().split("\n");
  };
  return { logger, lines };
}

describe("command logs", () => {
  test("at a terminal: one readable line per event, level, message and fields", async () => {
    const { logger, lines } = captured(true);
    logger.warn({ network: "eip155:31337", channels: 2 }, "channels of an earlier chain set aside");
    logger.debug("below the level");
    const [line, ...rest] = await lines();
    assert.deepEqual(rest, []);
    assert.match(line ?? "", /^\[\d\d:\d\d:\d\d\] WARN: channels of an earlier chain set aside /);
    assert.match(line ?? "", /"network":"eip155:31337"/);
    assert.match(line ?? "", /"channels":2/);
  });

  test("piped: JSON lines for machines", async () => {
    const { logger, lines } = captured(false);
    logger.warn({ channels: 2 }, "channels of an earlier chain set aside");
    const [line] = await lines();
    const parsed = JSON.parse(line ?? "") as Record<string, unknown>;
    assert.equal(parsed.msg, "channels of an earlier chain set aside");
    assert.equal(parsed.level, 40);
    assert.equal(parsed.channels, 2);
  });

  // What a terminal may read as a command: C0 (an escape, a line break), DEL, and C1 (U+009B is CSI).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is looked for
  const controls = /[\u0000-\u001f\u007f-\u009f]/;
  const hostile = "no such key \u001b]0;owned\u0007\u001b[2J\u009b31m\u007f";

  test("at a terminal: words from outside, in the message or a field, have their control characters written out", async () => {
    const { logger, lines } = captured(true);
    logger.warn({ reason: hostile }, `tool failed: ${hostile}\n  forged line`);
    const all = await lines();
    assert.equal(all.length, 1, JSON.stringify(all));
    const [line = ""] = all;
    assert.doesNotMatch(line, controls, JSON.stringify(line));
    assert.ok(
      line.includes(
        "tool failed: no such key \\u001b]0;owned\\u0007\\u001b[2J\\u009b31m\\u007f\\u000a  forged line",
      ),
      line,
    );
    assert.ok(
      line.includes('"reason":"no such key \\u001b]0;owned\\u0007\\u001b[2J\\u009b31m\\u007f"'),
      line,
    );
  });

  test("piped: a JSON line escapes C1 control characters and DEL too, and parses to the same words", async () => {
    const { logger, lines } = captured(false);
    logger.warn({ reason: hostile }, `tool failed: ${hostile}`);
    const [line = ""] = await lines();
    assert.doesNotMatch(line, controls, JSON.stringify(line));
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.equal(parsed.msg, `tool failed: ${hostile}`);
    assert.equal(parsed.reason, hostile);
  });
});

describe("error lines", () => {
  test("a seller's words in an error have their control characters written out; line breaks and tabs stay", () => {
    const written: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => {
      written.push(chunk);
      return true;
    }) as typeof process.stderr.write;
    try {
      printError(
        "tollgate pay: 402: seller says \u001b]0;owned\u0007\u001b[2J\r\u009b31mpaid\n\tsee the usage",
      );
    } finally {
      process.stderr.write = write;
    }
    // Before: the escape sequences reached the terminal as they came.
    assert.deepEqual(written, [
      "tollgate pay: 402: seller says \\u001b]0;owned\\u0007\\u001b[2J\\u000d\\u009b31mpaid\n\tsee the usage\n",
    ]);
  });
});
