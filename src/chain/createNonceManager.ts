import type { Address, PublicClient } from "viem";

export type CreateNonceManagerParameters = { address: Address; publicClient: PublicClient };

/** Hands out transaction nonces for one key, one sender at a time. */
export type NonceManager = {
  /**
   * Runs `send` with the next nonce, holding the lock until it returns. The nonce is taken
   * only when `send` succeeds; when it throws, the count is re-read from the chain so a
   * transaction the node did not accept leaves no gap.
   */
  withNonce<T>(send: (nonce: number) => Promise<T>): Promise<T>;
};

/**
 * A nonce manager for one sending key: a lock around "pick nonce, sign, broadcast", so that
 * any number of concurrent settles from one key get consecutive nonces and none is told
 * "nonce too low" or "replacement underpriced".
 */
export function createNonceManager({ address, publicClient }: CreateNonceManagerParameters): NonceManager {
  let next: number | undefined;
  let tail: Promise<unknown> = Promise.resolve();

  const readChainNonce = () => publicClient.getTransactionCount({ address, blockTag: "pending" });

  return {
    withNonce<T>(send: (nonce: number) => Promise<T>): Promise<T> {
      const run = async () => {
        if (next === undefined) next = await readChainNonce();
        const nonce = next;
        try {
          const result = await send(nonce);
          next = nonce + 1;
          return result;
        } catch (error) {
          next = undefined;
          throw error;
        }
      };
      const result = tail.then(run, run);
      tail = result.catch(() => undefined);
      return result;
    },
  };
}
