import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1";
import { BATCH_SETTLEMENT_ADDRESS, BATCH_SETTLEMENT_DOMAIN, voucherTypes } from "@x402/evm";
import {
  type Hex,
  hexToBigInt,
  numberToHex,
  parseSignature,
  serializeCompactSignature,
  serializeSignature,
  signatureToCompactSignature,
  verifyTypedData,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createVoucherVerifier } from "./createVoucherVerifier.js";

const chainId = 84532;
const domain = { ...BATCH_SETTLEMENT_DOMAIN, chainId, verifyingContract: BATCH_SETTLEMENT_ADDRESS } as const;
const channelOf = (i: number) => numberToHex(BigInt(i) * 0x9e3779b97f4a7c15n + 1n, { size: 32 });

async function signed(account: ReturnType<typeof privateKeyToAccount>, channelId: Hex, amount: bigint) {
  return account.signTypedData({
    domain,
    types: voucherTypes,
    primaryType: "Voucher",
    message: { channelId, maxClaimableAmount: amount },
  });
}

describe("voucher signatures", () => {
  test("agrees with EIP-712 recovery on canonical vouchers", async () => {
    const { isSigned: verify } = createVoucherVerifier({ chainId });
    const accounts = [0, 1, 2].map(() => privateKeyToAccount(generatePrivateKey()));
    let checked = 0;
    for (let round = 0; round < 4; round++) {
      for (const [i, account] of accounts.entries()) {
        const channelId = channelOf(i * 10 + round);
        const amount = BigInt(round) * 1_000_003n + BigInt(i);
        const signature = await signed(account, channelId, amount);
        const expected = await verifyTypedData({
          address: account.address,
          domain,
          types: voucherTypes,
          primaryType: "Voucher",
          message: { channelId, maxClaimableAmount: amount },
          signature,
        });
        assert.equal(expected, true);
        assert.equal(verify(account.address, channelId, amount, signature), true, `round ${round}`);
        // Another signer, another amount, another channel: refused whatever the key's state.
        const other = accounts[(i + 1) % accounts.length]!;
        assert.equal(verify(other.address, channelId, amount, signature), false);
        assert.equal(verify(account.address, channelId, amount + 1n, signature), false);
        assert.equal(verify(account.address, channelOf(999), amount, signature), false);
        checked += 1;
      }
    }
    assert.equal(checked, 12);
  });

  test("refuses every form the contract's claim refuses, though each recovers the signer", async () => {
    const { isSigned: verify } = createVoucherVerifier({ chainId });
    const account = privateKeyToAccount(generatePrivateKey());
    const channelId = channelOf(7);
    for (const amount of [5n, 6n, 7n]) {
      const signature = await signed(account, channelId, amount);
      const parts = parseSignature(signature);
      const n = secp256k1.CURVE.n;
      const highS = serializeSignature({
        r: parts.r,
        s: numberToHex(n - hexToBigInt(parts.s), { size: 32 }),
        yParity: parts.yParity === 0 ? 1 : 0,
      });
      const forms: Record<string, string> = {
        "high s": highS,
        "v of 0 or 1": `${signature.slice(0, 130)}0${parts.yParity}`,
        "v flipped": `${signature.slice(0, 130)}${parts.yParity === 0 ? "1c" : "1b"}`,
        "64 bytes": serializeCompactSignature(signatureToCompactSignature(parts)),
        "a byte more": `${signature}00`,
        "r of zero": `0x${"0".repeat(64)}${signature.slice(66)}`,
        "s of zero": `${signature.slice(0, 66)}${"0".repeat(64)}${signature.slice(130)}`,
        "r at n": `0x${n.toString(16)}${signature.slice(66)}`,
        "not hex": `${signature.slice(0, 131)}z`,
      };
      // The high-s form is the same signer to a recovery that allows it: the danger this guards.
      assert.equal(
        await verifyTypedData({
          address: account.address,
          domain,
          types: voucherTypes,
          primaryType: "Voucher",
          message: { channelId, maxClaimableAmount: amount },
          signature: highS,
        }),
        true,
      );
      for (const [form, odd] of Object.entries(forms))
        assert.equal(verify(account.address, channelId, amount, odd), false, form);
      assert.equal(verify(account.address, channelId, amount, signature), true);
    }
  });

  test("an amount outside uint128 or a channel id that is not 32 bytes is refused", async () => {
    const { isSigned: verify } = createVoucherVerifier({ chainId });
    const account = privateKeyToAccount(generatePrivateKey());
    const channelId = channelOf(3);
    assert.equal(verify(account.address, channelId, 1n << 128n, await signed(account, channelId, 1n)), false);
    const signature = await signed(account, channelId, 2n);
    assert.equal(verify(account.address, channelId, 2n, signature), true);
    assert.equal(verify(account.address, `${channelId}00` as Hex, 2n, signature), false);
    assert.equal(verify(account.address, channelId.slice(0, 64) as Hex, 2n, signature), false);
  });
});
