/** One EIP-2612 permit nonce of one owner on one token, on one network. */
export type PermitNonce = { network: string; token: string; owner: string; nonce: string };

export type PermitHoldTaken = { taken: true } | { taken: false; heldUntilMs: number };

/**
 * What letting go of a payment's hold did: `released` (its nonce is free), `settling` (a settle of it
 * began: the hold stays until that settle ends or its deadline passes), or `not_held` (it holds nothing).
 */
export type PermitHoldGivenUp = "released" | "settling" | "not_held";

export type PermitHolds = {
  /**
   * Holds `permit` for the payment `holder` until `untilMs`, unless another payment holds it: a
   * payment already holding it takes it again (a second verify of the same payment). `settling` marks
   * the hold as its settle's: from then on only the settle's end (`release`) lets it go.
   */
  take(
    permit: PermitNonce,
    holder: string,
    untilMs: number,
    options?: { settling?: boolean },
  ): PermitHoldTaken;
  /** Lets go of whatever `holder` holds: its settlement ended. */
  release(holder: string): void;
  /** Lets go of what `holder` holds because its seller gave it up unsettled, unless a settle of it began. */
  giveUp(holder: string): PermitHoldGivenUp;
  /** Permits held now. */
  readonly size: number;
};

export type CreatePermitHoldsParameters = {
  /** Most permits held at once; past it the one held longest is let go first (default 50,000). */
  maxHeld?: number;
  now?: () => number;
};

type Hold = { holder: string; untilMs: number; settling: boolean };

const nonceNumber = (nonce: string) => {
  try {
    return BigInt(nonce).toString();
  } catch {
    return nonce;
  }
};

/**
 * Which verified payment holds each EIP-2612 permit nonce until it settles. Payments a buyer signs
 * at once each carry a permit on the same token nonce, and only the first permit to land counts: the
 * others' settlements then fail for want of allowance, after a seller has served them. Holding the
 * nonce from verify to settle refuses them before anything is served.
 */
export function createPermitHolds({
  maxHeld = 50_000,
  now = Date.now,
}: CreatePermitHoldsParameters = {}): PermitHolds {
  // Insertion order is the order taken, which lets the oldest go first when full.
  const holds = new Map<string, Hold>();
  const keysOf = new Map<string, Set<string>>();

  const drop = (key: string) => {
    const hold = holds.get(key);
    if (!hold) return;
    holds.delete(key);
    const keys = keysOf.get(hold.holder);
    keys?.delete(key);
    if (keys?.size === 0) keysOf.delete(hold.holder);
  };

  return {
    take(permit, holder, untilMs, { settling = false } = {}) {
      // One nonce however it is written ("1", "01"): the token reads it as a number.
      const key = [permit.network, permit.token, permit.owner, nonceNumber(permit.nonce)]
        .map((part) => part.toLowerCase())
        .join("/");
      const at = now();
      const held = holds.get(key);
      const live = held !== undefined && held.untilMs > at;
      if (live && held.holder !== holder) return { taken: false, heldUntilMs: held.untilMs };
      // A verify of a payment whose settle began leaves the hold its settle's.
      const settlingAlready = live && held.settling;
      drop(key);
      if (holds.size >= maxHeld) {
        for (const [oldKey, hold] of holds) if (hold.untilMs <= at) drop(oldKey);
        while (holds.size >= maxHeld) drop(holds.keys().next().value as string);
      }
      holds.set(key, { holder, untilMs, settling: settling || settlingAlready });
      const keys = keysOf.get(holder) ?? new Set<string>();
      keys.add(key);
      keysOf.set(holder, keys);
      return { taken: true };
    },
    release(holder) {
      for (const key of [...(keysOf.get(holder) ?? [])]) drop(key);
    },
    giveUp(holder) {
      const at = now();
      const keys = [...(keysOf.get(holder) ?? [])];
      const live = keys.filter((key) => (holds.get(key)?.untilMs ?? 0) > at);
      if (live.some((key) => holds.get(key)?.settling)) return "settling";
      for (const key of keys) drop(key);
      return live.length > 0 ? "released" : "not_held";
    },
    get size() {
      return holds.size;
    },
  };
}
