import { type Address, BaseError, NonceTooLowError, type PublicClient } from "viem";

export type CreateNonceManagerParameters = { address: Address; publicClient: PublicClient };

/** Hands out transaction nonces for one key, one sender at a time. */
export type NonceManager = {
  /**
   * Runs `send` with the next nonce, holding the lock until it returns. The nonce is taken
   * only when `send` succeeds; when it throws, the count is re-read from the chain so a
   * transaction the node did not accept leaves no gap. When the node says the nonce is too low
   * (the key also sent from somewhere else), `send` runs once more with the chain's count:
   * the refused transaction never entered the pool, so signing it again cannot send it twice.
   */
  withNonce<T>(send: (nonce: number) => Promise<T>): Promise<T>;
  /**
   * Makes the next send read the count from the chain again. For a transaction given up while waiting
   * for it: the node may have dropped it, and the nonces handed out after it then wait behind a hole
   * that nothing fills. The chain's pending count does not include them, so the next send fills the hole.
   */
  resync(): void;
};

/**
 * A nonce manager for one sending key: a lock around "pick nonce, sign, broadcast", so that
 * any number of concurrent settles from one key get consecutive nonces and none is told
 * "nonce too low" or "replacement underpriced".
 */
export function createNonceManager({ address, publicClient }: CreateNonceManagerParameters): NonceManager {
  let next: number | undefined;
  let stale = false;
  let tail: Promise<unknown> = Promise.resolve();

  const readChainNonce = () => publicClient.getTransactionCount({ address, blockTag: "pending" });

  return {
    withNonce<T>(send: (nonce: number) => Promise<T>): Promise<T> {
      const attempt = async (retryOnStaleNonce: boolean): Promise<T> => {
        if (next === undefined || stale) {
          stale = false;
          next = await readChainNonce();
        }
        const nonce = next;
        try {
          const result = await send(nonce);
          next = nonce + 1;
          return result;
        } catch (error) {
          next = undefined;
          if (retryOnStaleNonce && isNonceTooLow(error)) return attempt(false);
          throw error;
        }
      };
      const run = () => attempt(true);
      const result = tail.then(run, run);
      tail = result.catch(() => undefined);
      return result;
    },
    resync() {
      stale = true;
    },
  };
}

/** The node refused a transaction because its nonce was already used. */
function isNonceTooLow(error: unknown): boolean {
  if (error instanceof BaseError && error.walk((cause) => cause instanceof NonceTooLowError) !== null) {
    return true;
  }
  return /nonce too low|nonce has already been used|nonce is too low/i.test(
    error instanceof Error ? error.message : String(error),
  );
}
