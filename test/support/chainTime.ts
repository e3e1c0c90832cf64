import { createPublicClient, createTestClient, http } from "viem";
import type { Devnet } from "../../src/devnet/index.js";

/**
 * Runs `act` on a chain whose clock has passed `at` (unix s), then puts the chain back as it was
 * (anvil's snapshot and revert): a test sees the chain past a deadline without leaving the chain's
 * clock ahead of this host's for the tests after it. `act` must send no transaction.
 */
export async function withChainPast<T>(devnet: Devnet, at: Date, act: () => Promise<T>): Promise<T> {
  const testClient = createTestClient({ mode: "anvil", transport: http(devnet.rpcUrl) });
  const latest = (await createPublicClient({ transport: http(devnet.rpcUrl) }).getBlock()).timestamp;
  const past = BigInt(Math.floor(at.getTime() / 1000) + 1);
  const snapshot = await testClient.snapshot();
  try {
    await testClient.setNextBlockTimestamp({ timestamp: past > latest ? past : latest + 1n });
    await testClient.mine({ blocks: 1 });
    return await act();
  } finally {
    await testClient.revert({ id: snapshot });
  }
}
