import assert from "node:assert/strict";
import { test } from "node:test";
import { type Hex, numberToHex } from "viem";
import { inputSpendsNonce } from "./inputSpendsNonce.js";

test("a nonce carried as a spare word of a call that cannot be decoded proves nothing to a caller who asks for decoded calls", () => {
  const nonce = 123_456_789n;
  // An unknown function (a multicall, a seller's own contract) whose arguments hold the nonce.
  const input = `0xdeadbeef${"00".repeat(32)}${numberToHex(nonce, { size: 32 }).slice(2)}` as Hex;
  assert.equal(inputSpendsNonce(input, nonce), true, "the loose reading finds the word");
  assert.equal(inputSpendsNonce(input, nonce, { decodedOnly: true }), false);
  assert.equal(inputSpendsNonce(input, nonce + 1n), false);
});
