import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createPublicClient, type Hex, http, type PublicClient } from "viem";
import { type Devnet, startDevnet } from "../devnet/index.js";
import { createFacilitatorSigner } from "./createFacilitatorSigner.js";

let devnet: Devnet;
let chain: PublicClient;

before(async () => {
  devnet = await startDevnet({ buyers: 1, freshBuyers: 0 });
  chain = createPublicClient({ transport: http(devnet.rpcUrl) }) as PublicClient;
});

after(async () => {
  await devnet?.stop();
});

const rpc = (method: string, params: unknown[]) =>
  chain.request({ method: method as never, params: params as never });

test("a transaction the node dropped does not hold back the facilitator's later ones", async () => {
  const signer = createFacilitatorSigner({
    rpcUrl: devnet.rpcUrl,
    privateKey: devnet.accounts.facilitator.privateKey,
    chainId: devnet.chainId,
    pollingIntervalMs: 50,
    receiptTimeoutMs: 2_000,
  });
  const to = devnet.accounts.payTo.address;
  await signer.waitForTransactionReceipt({ hash: await signer.sendValue({ to, value: 1n }) });

  // The node takes a transaction into its pool, then drops it (evicted, or lost in a node restart).
  await rpc("evm_setAutomine", [false]);
  let dropped: Hex;
  try {
    dropped = await signer.sendValue({ to, value: 2n });
    await rpc("anvil_dropTransaction", [dropped]);
  } finally {
    await rpc("evm_setAutomine", [true]);
  }
  // Sent behind the hole the dropped one left: the node holds it back.
  const behind = await signer.sendValue({ to, value: 3n });
  await assert.rejects(signer.waitForTransactionReceipt({ hash: dropped }), /Timed out/);

  // Once the dropped transaction is given up, the next one fills its nonce, and the one behind it follows.
  const next = await signer.sendValue({ to, value: 4n });
  const [nextReceipt, behindReceipt] = await Promise.all([
    signer.waitForTransactionReceipt({ hash: next }),
    signer.waitForTransactionReceipt({ hash: behind }),
  ]);
  assert.equal(nextReceipt.status, "success");
  assert.equal(behindReceipt.status, "success");
  // And the signer goes on sending after them.
  const later = await signer.waitForTransactionReceipt({ hash: await signer.sendValue({ to, value: 5n }) });
  assert.equal(later.status, "success");
});
