import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Hex, parseEther, parseSignature, recoverTypedDataAddress } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { privateKeyAccount } from "./privateKeyAccount.js";

const typedData = (i: number) =>
  ({
    domain: { name: "Tollgate", version: "1", chainId: 84532, verifyingContract: `0x${"42".repeat(20)}` },
    types: {
      Charge: [
        { name: "payer", type: "address" },
        { name: "amount", type: "uint256" },
        { name: "note", type: "string" },
      ],
    },
    primaryType: "Charge",
    message: { payer: `0x${"ab".repeat(20)}`, amount: BigInt(i) * 1_000_003n, note: `request ${i}` },
  }) as const;

describe("privateKeyAccount", () => {
  // Forty keys, so both recovery ids come up (asserted below).
  const keys: Hex[] = Array.from({ length: 40 }, () => generatePrivateKey());

  test("signs typed data with the same bytes as viem's account, recoverable to its address", async () => {
    const parities = new Set<number>();
    for (const [i, key] of keys.entries()) {
      const ours = privateKeyAccount(key);
      const viems = privateKeyToAccount(key);
      assert.equal(ours.address, viems.address);
      const signature = await ours.signTypedData(typedData(i));
      assert.equal(signature, await viems.signTypedData(typedData(i)));
      assert.equal(await recoverTypedDataAddress({ ...typedData(i), signature }), viems.address);
      parities.add(parseSignature(signature).yParity);
    }
    assert.deepEqual([...parities].sort(), [0, 1]);
  });

  test("signs hashes and messages with the same bytes as viem's account", async () => {
    for (const [i, key] of keys.entries()) {
      const ours = privateKeyAccount(key);
      const viems = privateKeyToAccount(key);
      const hash = `0x${i.toString(16).padStart(2, "0").repeat(32)}` as Hex;
      assert.equal(await ours.sign({ hash }), await viems.sign({ hash }));
      assert.equal(
        await ours.signMessage({ message: `hello ${i}` }),
        await viems.signMessage({ message: `hello ${i}` }),
      );
      const raw = { raw: new Uint8Array([i, 1, 2, 3]) };
      assert.equal(await ours.signMessage({ message: raw }), await viems.signMessage({ message: raw }));
    }
  });

  test("signs legacy, EIP-2930 and EIP-1559 transactions with the same bytes as viem's account", async () => {
    const to = `0x${"11".repeat(20)}` as const;
    for (const [i, key] of keys.slice(0, 10).entries()) {
      const ours = privateKeyAccount(key);
      const viems = privateKeyToAccount(key);
      const transactions = [
        { type: "legacy", chainId: 31337, nonce: i, gas: 21_000n, gasPrice: 1_000_000_000n, to, value: 1n },
        {
          type: "eip2930",
          chainId: 31337,
          nonce: i,
          gas: 50_000n,
          gasPrice: 2n,
          to,
          accessList: [{ address: to, storageKeys: [`0x${"00".repeat(31)}01`] }],
          data: "0xdeadbeef",
        },
        {
          type: "eip1559",
          chainId: 84532,
          nonce: i + 7,
          gas: 90_000n,
          maxFeePerGas: 3_000_000_000n,
          maxPriorityFeePerGas: 1_000_000n,
          to,
          value: parseEther("0.01"),
          data: "0x095ea7b3",
        },
      ] as const;
      for (const transaction of transactions)
        assert.equal(await ours.signTransaction(transaction), await viems.signTransaction(transaction));
    }
  });
});
