import assert from "node:assert/strict";
import { test } from "node:test";
import { createChainClock } from "./chainClock.js";

test("the chain's clock is read once per refresh, and moves with the host's clock between reads", async () => {
  let hostMs = 1_000_000_000;
  let chainSeconds = 1_000_040; // 40 s ahead of the host
  let reads = 0;
  const clock = createChainClock(
    async () => {
      reads++;
      return chainSeconds;
    },
    { refreshMs: 5_000, now: () => hostMs },
  );
  assert.deepEqual(await Promise.all([clock(), clock()]), [1_000_040, 1_000_040]);
  assert.equal(reads, 1, "concurrent calls share one read");
  hostMs += 3_000;
  chainSeconds += 3;
  assert.equal(await clock(), 1_000_043, "the host's clock plus the offset read");
  assert.equal(reads, 1);
  hostMs += 2_000;
  chainSeconds += 100; // read again once the refresh is due
  assert.equal(await clock(), chainSeconds);
  assert.equal(reads, 2);
});

test("a failed read is not kept: the next call reads again", async () => {
  let fail = true;
  let reads = 0;
  const clock = createChainClock(
    async () => {
      reads++;
      if (fail) throw new Error("rpc down");
      return 42;
    },
    { now: () => 0 },
  );
  await assert.rejects(clock(), /rpc down/);
  fail = false;
  assert.equal(await clock(), 42);
  assert.equal(reads, 2);
});
