import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isKnownReasonCode, ReasonCode } from "./reasonCodes.js";

describe("ReasonCode", () => {
  const codes = Object.values(ReasonCode);

  test("every code is a distinct snake_case wire string", () => {
    assert.equal(new Set(codes).size, codes.length);
    for (const code of codes) assert.match(code, /^[a-z0-9]+(_[a-z0-9]+)*$/);
  });

  test("keeps x402's upto settlement code verbatim", () => {
    assert.equal(
      ReasonCode.uptoSettlementExceedsAmount,
      "invalid_upto_evm_payload_settlement_exceeds_amount",
    );
  });

  test("recognizes listed codes and only those", () => {
    assert.ok(isKnownReasonCode("insufficient_funds"));
    assert.ok(isKnownReasonCode("tollgate_authorization_replayed"));
    assert.ok(!isKnownReasonCode("something_else"));
  });
});
