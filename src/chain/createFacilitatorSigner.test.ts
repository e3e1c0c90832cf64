import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createPublicClient, type Hex, http, type PublicClient } from "viem";
import { startAnswerLosingRpc } from "../../test/support/answerLosingRpc.js";
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

/**
 * The facilitator's signer sends 1,000 wei through a relay that loses the node's answer to the send (and
 * answers `unseenLookups` lookups of it "no such transaction"): sent once, and its nonce taken once.
 */
async function sendThroughLostAnswer(
  unseenLookups: number,
  afterwards?: (sent: {
    signer: ReturnType<typeof createFacilitatorSigner>;
    balanceBefore: bigint;
  }) => Promise<void>,
) {
  const relay = await startAnswerLosingRpc(
    devnet.rpcUrl,
    ({ method }) => method === "eth_sendRawTransaction",
    { unseenLookups },
  );
  const signer = createFacilitatorSigner({
    rpcUrl: relay.url,
    privateKey: devnet.accounts.facilitator.privateKey,
    chainId: devnet.chainId,
    pollingIntervalMs: 50,
    receiptTimeoutMs: 5_000,
  });
  const to = devnet.accounts.payTo.address;
  const from = devnet.accounts.facilitator.address;
  try {
    const [balanceBefore, nonceBefore] = await Promise.all([
      chain.getBalance({ address: to }),
      chain.getTransactionCount({ address: from }),
    ]);
    // Who pays: the facilitator sends 1,000 wei once (a sponsored approval's gas is sent this way).
    const hash = await signer.sendValue({ to, value: 1_000n });
    assert.equal(relay.lost(), 1, "the node's first answer was lost");
    assert.equal((await signer.waitForTransactionReceipt({ hash })).status, "success");
    assert.equal(await chain.getBalance({ address: to }), balanceBefore + 1_000n, "sent once, not twice");
    assert.equal(await chain.getTransactionCount({ address: from }), nonceBefore + 1);
    await afterwards?.({ signer, balanceBefore });
  } finally {
    await relay.close();
  }
}

test("a transaction the node took, whose answer was lost, is reported as sent, once, and the next nonce follows it", async () => {
  await sendThroughLostAnswer(0, async ({ signer, balanceBefore }) => {
    // And the signer's next nonce is right after it.
    const to = devnet.accounts.payTo.address;
    const next = await signer.waitForTransactionReceipt({ hash: await signer.sendValue({ to, value: 1n }) });
    assert.equal(next.status, "success");
    assert.equal(await chain.getBalance({ address: to }), balanceBefore + 1_001n);
  });
});

test("a transaction whose answer was lost is found when the node asked first has not seen it yet (behind a load balancer): sent once", async () => {
  await sendThroughLostAnswer(1);
});
