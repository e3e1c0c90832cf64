import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, test } from "node:test";
import { createCliLogger } from "./cliSupport.js";

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
});
