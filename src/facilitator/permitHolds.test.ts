import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createPermitHolds } from "./permitHolds.js";

const permit = { network: "eip155:31337", token: "0xToken", owner: "0xOwner", nonce: "0" };

describe("createPermitHolds", () => {
  test("refuses a permit nonce held by another payment until the holder lets go", () => {
    let now = 1_000;
    const holds = createPermitHolds({ now: () => now });
    assert.deepEqual(holds.take(permit, "a", 5_000), { taken: true });
    assert.deepEqual(holds.take({ ...permit, owner: "0xOWNER" }, "b", 5_000), {
      taken: false,
      heldUntilMs: 5_000,
    });
    assert.deepEqual(holds.take(permit, "a", 5_000), { taken: true }, "the same payment verified again");
    assert.deepEqual(holds.take({ ...permit, nonce: "1" }, "b", 5_000), { taken: true }, "another nonce");
    holds.release("a");
    assert.deepEqual(holds.take(permit, "b", 6_000), { taken: true });
    now = 6_000;
    assert.deepEqual(holds.take(permit, "c", 9_000), { taken: true }, "a hold ends with its deadline");
    holds.release("b");
    holds.release("c");
    assert.equal(holds.size, 0);
  });

  test("lets go of a hold its seller gave up, but not one whose settle began: only that settle's end frees it", () => {
    let now = 1_000;
    const holds = createPermitHolds({ now: () => now });
    assert.equal(holds.giveUp("a"), "not_held", "a payment that holds nothing");
    holds.take(permit, "a", 5_000);
    assert.equal(holds.giveUp("b"), "not_held", "another payment cannot let go of a's hold");
    assert.equal(holds.take(permit, "b", 5_000).taken, false);
    assert.equal(holds.giveUp("a"), "released");
    assert.deepEqual(
      holds.take(permit, "b", 5_000),
      { taken: true },
      "the nonce is free for the next payment",
    );

    assert.deepEqual(holds.take(permit, "b", 5_000, { settling: true }), { taken: true });
    assert.deepEqual(holds.take(permit, "b", 5_000), { taken: true }, "verified again while it settles");
    assert.equal(holds.giveUp("b"), "settling", "a verify again does not make the hold given up");
    assert.equal(holds.take(permit, "c", 5_000).taken, false, "still held for b's settle");
    holds.release("b");
    assert.deepEqual(holds.take(permit, "c", 5_000), { taken: true }, "its settle ended");

    now = 5_000;
    assert.equal(holds.giveUp("c"), "not_held", "a hold past its deadline holds nothing");
    assert.equal(holds.size, 0);
  });

  test("keeps a hold whose payment was verified twice until both verifies are given up", () => {
    const holds = createPermitHolds();
    const untilMs = Date.now() + 60_000;
    holds.take(permit, "a", untilMs);
    holds.take(permit, "a", untilMs);
    assert.equal(holds.giveUp("a"), "verified_again", "the other request may be being served");
    assert.equal(holds.take(permit, "b", untilMs).taken, false);
    assert.equal(holds.giveUp("a"), "released");
    assert.deepEqual(holds.take(permit, "b", untilMs), { taken: true });
  });

  test("a verify again for the request that took a hold (its approval's relay) does not count as another", () => {
    const holds = createPermitHolds();
    const untilMs = Date.now() + 60_000;
    holds.take(permit, "a", untilMs);
    holds.take(permit, "a", untilMs, { again: true });
    assert.equal(holds.giveUp("a"), "released");
  });

  test("remembers a hold given up by its seller until the hold's end, and not one merely let go or settled", () => {
    let now = 0;
    const holds = createPermitHolds({ now: () => now });
    holds.take(permit, "a", 1_000);
    assert.equal(holds.gaveUp("a"), false);
    assert.equal(holds.giveUp("a"), "released");
    assert.equal(holds.gaveUp("a"), true, "its seller said it will not settle it");
    holds.take({ ...permit, nonce: "2" }, "b", 1_000);
    holds.release("b");
    assert.equal(holds.gaveUp("b"), false, "a settle's end is no giving up");
    assert.equal(holds.gaveUp("c"), false, "never held here (a restart since its verify)");
    now = 1_000;
    assert.equal(holds.gaveUp("a"), false, "past the hold's end");
  });

  test("holds one nonce however its digits are written: a payment on nonce 01 is refused while one on 1 is held", () => {
    const holds = createPermitHolds();
    assert.deepEqual(holds.take({ ...permit, nonce: "1" }, "a", Date.now() + 60_000).taken, true);
    assert.equal(holds.take({ ...permit, nonce: "01" }, "b", Date.now() + 60_000).taken, false);
    assert.equal(holds.take({ ...permit, nonce: "0001" }, "c", Date.now() + 60_000).taken, false);
  });

  test("keeps at most maxHeld, letting expired holds go first, then the oldest", () => {
    let now = 0;
    const holds = createPermitHolds({ maxHeld: 2, now: () => now });
    holds.take({ ...permit, nonce: "1" }, "a", 100);
    holds.take({ ...permit, nonce: "2" }, "b", 1_000);
    now = 200;
    holds.take({ ...permit, nonce: "3" }, "c", 1_000);
    assert.equal(holds.size, 2);
    assert.deepEqual(holds.take({ ...permit, nonce: "2" }, "x", 1_000), { taken: false, heldUntilMs: 1_000 });
    holds.take({ ...permit, nonce: "4" }, "d", 1_000);
    assert.equal(holds.size, 2);
    assert.deepEqual(
      holds.take({ ...permit, nonce: "2" }, "x", 1_000),
      { taken: true },
      "the oldest was let go",
    );
  });
});
