import { setTimeout as sleep } from "node:timers/promises";
import { type Hex, keccak256, type PublicClient } from "viem";

/**
 * When the node is asked again for a transaction whose send was answered with an error (ms after that
 * answer): behind a load balancer the question may reach a node the transaction has not spread to yet.
 */
const LOOKUPS_AFTER_MS = [0, 250, 750];

/**
 * Sends a signed transaction and answers its hash. An error answer does not say the node refused it: a
 * node or a load balancer may take the transaction and lose the answer (a 502, a timeout, a retry told
 * "already known" or "nonce too low"). A transaction the node has (asked up to three times within a
 * second) is reported as sent, with the error given to `tookDespite`; read as a failure, its nonce would
 * be signed again with other work, or the gas it was funded with spent for nothing.
 */
export async function broadcastTransaction(
  publicClient: PublicClient,
  serializedTransaction: Hex,
  tookDespite?: (error: unknown) => void,
): Promise<Hex> {
  const hash = keccak256(serializedTransaction);
  try {
    await publicClient.sendRawTransaction({ serializedTransaction });
  } catch (error) {
    let waited = 0;
    for (const afterMs of LOOKUPS_AFTER_MS) {
      await sleep(afterMs - waited);
      waited = afterMs;
      const known = await publicClient.getTransaction({ hash }).then(
        () => true,
        () => false,
      );
      if (known) {
        tookDespite?.(error);
        return hash;
      }
    }
    throw error;
  }
  return hash;
}
