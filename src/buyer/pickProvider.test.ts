import assert from "node:assert/strict";
import { test } from "node:test";
import { type PickableProvider, pickProvider } from "./pickProvider.js";

const offer = (label: string, expectedMaxAtomic: bigint, ttftMs?: number): PickableProvider => ({
  label,
  expectedMaxAtomic,
  ttftMs,
});

test("without the routing key the cheapest wins, however slow", () => {
  const cheap = offer("cheap", 1000n, 900);
  const fast = offer("fast", 1010n, 40);
  const { chosen, why } = pickProvider({ allowed: [fast, cheap], preferFastestWithinPercent: undefined });
  assert.equal(chosen, cheap);
  assert.match(why, /^the cheapest for this request within policy/);
});

test("the fastest within the margin of the cheapest wins, and says by how much", () => {
  const cheap = offer("cheap", 1000n, 180);
  const fast = offer("fast", 1200n, 41);
  const { chosen, why } = pickProvider({ allowed: [cheap, fast], preferFastestWithinPercent: 20 });
  assert.equal(chosen, fast);
  assert.equal(why, "fastest within 20% of the cheapest: 41 ms TTFT vs 180 ms, at most $0.0012 vs $0.001");
});

test("a faster offer one atomic unit beyond the margin is named, not taken", () => {
  const cheap = offer("cheap", 1000n, 180);
  const fast = offer("fast", 1201n, 41);
  const { chosen, why } = pickProvider({ allowed: [cheap, fast], preferFastestWithinPercent: 20 });
  assert.equal(chosen, cheap);
  assert.match(why, /fast is faster \(41 ms TTFT\) but 21% above the cheapest, beyond 20%$/);
});

test("an unmeasured offer within the margin is tried first, the cheapest unmeasured one", () => {
  const cheap = offer("cheap", 1000n, 180);
  const newA = offer("new-a", 1100n);
  const newB = offer("new-b", 1050n);
  const far = offer("far", 5000n);
  const { chosen, why } = pickProvider({ allowed: [cheap, newA, newB, far], preferFastestWithinPercent: 20 });
  assert.equal(chosen, newB);
  assert.match(why, /^not measured yet/);
});

test("when the cheapest is also the fastest it stays chosen; ties go to the cheaper", () => {
  const cheap = offer("cheap", 1000n, 50);
  const same = offer("same", 1000n, 50);
  const slower = offer("slower", 1100n, 300);
  const { chosen, why } = pickProvider({ allowed: [slower, same, cheap], preferFastestWithinPercent: 20 });
  assert.ok(chosen === cheap || chosen === same);
  assert.equal(chosen?.expectedMaxAtomic, 1000n);
  assert.match(why, /and the fastest within 20% of the cheapest: 50 ms TTFT/);
});

test("a margin of 0 keeps only offers at the cheapest price", () => {
  const cheap = offer("cheap", 1000n, 300);
  const fast = offer("fast", 1001n, 10);
  assert.equal(pickProvider({ allowed: [cheap, fast], preferFastestWithinPercent: 0 }).chosen, cheap);
});

test("nothing allowed, nothing chosen", () => {
  assert.equal(pickProvider({ allowed: [], preferFastestWithinPercent: 20 }).chosen, undefined);
});
