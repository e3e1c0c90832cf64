import { type Hex, keccak256, type PublicClient } from "viem";

/**
 * Sends a signed transaction and answers its hash. An error answer does not say the node refused it: a
 * node or a load balancer may take the transaction and lose the answer (a 502, a timeout, a retry told
 * "already known" or "nonce too low"). A transaction the node has is reported as sent, with the error
 * given to `tookDespite`; read as a failure, its nonce would be signed again with other work, or the gas
 * it was funded with spent for nothing.
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
    const known = await publicClient.getTransaction({ hash }).then(
      () => true,
      () => false,
    );
    if (!known) throw error;
    tookDespite?.(error);
  }
  return hash;
}
