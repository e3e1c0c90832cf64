/**
 * Keeps concurrent settles of one payer in one token from being sent beyond what it holds. Each
 * settle is simulated against the latest block, which does not see the others still in flight: a payer
 * that signed several authorizations for all it holds, settled at once, would have every one pass its
 * simulation and all but the first revert on chain, at the facilitator's gas. A settle that arrives
 * while others of the same payer and token are in flight reads the payer's balance; when it does not
 * cover them and this one too, it waits for them to end (its simulation then sees what they moved).
 */
export function createPayerFundsGuard(readBalance: (asset: string, payer: string) => Promise<bigint>) {
  type Held = { atomic: bigint; ends: Set<Promise<void>> };
  const held = new Map<string, Held>();
  /** Runs `settle` once the payer's funds can cover it beside the settles of it already in flight. */
  return async function withFunds<T>(
    payer: string,
    asset: string,
    amountAtomic: bigint,
    settle: () => Promise<T>,
  ): Promise<T> {
    const key = `${payer.toLowerCase()}/${asset.toLowerCase()}`;
    const entry = held.get(key) ?? { atomic: 0n, ends: new Set<Promise<void>>() };
    const othersAtomic = entry.atomic;
    const othersEnd = [...entry.ends];
    let ended: () => void = () => {};
    const end = new Promise<void>((resolve) => {
      ended = resolve;
    });
    entry.atomic += amountAtomic;
    entry.ends.add(end);
    held.set(key, entry);
    try {
      if (othersAtomic > 0n && amountAtomic > 0n) {
        const balance = await readBalance(asset, payer).catch(() => undefined);
        if (balance === undefined || balance - othersAtomic < amountAtomic) await Promise.all(othersEnd);
      }
      return await settle();
    } finally {
      entry.atomic -= amountAtomic;
      entry.ends.delete(end);
      if (entry.ends.size === 0) held.delete(key);
      ended();
    }
  };
}
