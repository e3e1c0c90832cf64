import assert from "node:assert/strict";
import { test } from "node:test";
import { judgeSettlement } from "./checkSettlementOnChain.js";

const terms = { statedAtomic: 300n, maxAtomic: 1_000n, transaction: "0xabc" };

test("a transaction that moved the stated charge confirms it, beside other transfers of the payer", () => {
  assert.deepEqual(judgeSettlement({ found: true, transfersAtomic: [300n] }, terms), { kind: "confirmed" });
  assert.deepEqual(judgeSettlement({ found: true, transfersAtomic: [700n, 300n] }, terms), {
    kind: "confirmed",
  });
});

test("one transfer of another amount is booked as what moved", () => {
  const verdict = judgeSettlement({ found: true, transfersAtomic: [800n] }, terms);
  assert.equal(verdict.kind, "moved");
  assert.equal(verdict.kind === "moved" && verdict.movedAtomic, 800n);
  const less = judgeSettlement({ found: true, transfersAtomic: [100n] }, terms);
  assert.equal(less.kind === "moved" && less.movedAtomic, 100n);
});

test("several transfers none of which is the stated charge count as the maximum", () => {
  const verdict = judgeSettlement({ found: true, transfersAtomic: [100n, 200n] }, terms);
  assert.equal(verdict.kind === "moved" && verdict.movedAtomic, 1_000n);
});

test("no transfer, or no transaction of this authorization, leaves the maximum reserved", () => {
  assert.equal(judgeSettlement({ found: true, transfersAtomic: [] }, terms).kind, "unconfirmed");
  const missing = judgeSettlement({ found: false, why: "reverted" }, terms);
  assert.equal(missing.kind, "unconfirmed");
  assert.match(
    missing.kind === "unconfirmed" ? missing.message : "",
    /0xabc reverted; .* until its deadline/,
  );
});
