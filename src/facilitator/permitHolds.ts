/** One EIP-2612 permit nonce of one owner on one token, on one network. */
export type PermitNonce = { network: string; token: string; owner: string; nonce: string };

export type PermitHoldTaken = { taken: true } | { taken: false; heldUntilMs: number };

/**
 * What letting go of a payment's hold did: `released` (its nonce is free), `settling` (a settle of it
 * began: the hold stays until that settle ends or its deadline passes), `verified_again` (the payment
 * was verified for another request too, which has not let go: the hold stays for it), or `not_held`
 * (it holds nothing).
 */
export type PermitHoldGivenUp = "released" | "settling" | "verified_again" | "not_held";

export type PermitHolds = {
  /**
   * Holds `permit` for the payment `holder` until `untilMs`, unless another payment holds it: a
   * payment already holding it takes it again (a second verify of the same payment, counted: each
   * verify's request lets go of it once; `again`, a verify for a request that took it already, is not
   * counted). `settling` marks the hold as its settle's: from then on only the settle's end (`release`)
   * lets it go.
   */
  take(
    permit: PermitNonce,
    holder: string,
    untilMs: number,
    options?: { settling?: boolean; again?: boolean },
  ): PermitHoldTaken;
  /** Lets go of whatever `holder` holds: its settlement ended. */
  release(holder: string): void;
  /**
   * Lets go of one verify of what `holder` holds because its seller gave it up unsettled: the hold ends
   * with the last, unless a settle of it began.
   */
  giveUp(holder: string): PermitHoldGivenUp;
  /**
   * Whether `holder` gave its hold up here (`giveUp` answered `released`), until that hold's end: its
   * seller said it would not settle it. A holder whose hold is merely gone (this process restarted, or
   * let it go when full) was not given up.
   */
  gaveUp(holder: string): boolean;
  /** Permits held now. */
  readonly size: number;
};

export type CreatePermitHoldsParameters = {
  /** Most permits held at once; past it the one held longest is let go first (default 50,000). */
  maxHeld?: number;
  now?: () => number;
};

/** `verifies`: the verifies of the payment not given up yet (the same payment sent in several requests). */
type Hold = { holder: string; untilMs: number; settling: boolean; verifies: number };

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
  // Holders given up, until their hold's end; bounded as the holds are, the oldest forgotten first.
  const givenUp = new Map<string, number>();
  const rememberGivenUp = (holder: string, untilMs: number) => {
    givenUp.delete(holder);
    if (givenUp.size >= maxHeld) {
      const at = now();
      for (const [old, until] of givenUp) if (until <= at) givenUp.delete(old);
      while (givenUp.size >= maxHeld) givenUp.delete(givenUp.keys().next().value as string);
    }
    givenUp.set(holder, untilMs);
  };

  const drop = (key: string) => {
    const hold = holds.get(key);
    if (!hold) return;
    holds.delete(key);
    const keys = keysOf.get(hold.holder);
    keys?.delete(key);
    if (keys?.size === 0) keysOf.delete(hold.holder);
  };

  return {
    take(permit, holder, untilMs, { settling = false, again = false } = {}) {
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
      const verifies = live ? held.verifies + (settling || again ? 0 : 1) : settling ? 0 : 1;
      drop(key);
      if (holds.size >= maxHeld) {
        for (const [oldKey, hold] of holds) if (hold.untilMs <= at) drop(oldKey);
        while (holds.size >= maxHeld) drop(holds.keys().next().value as string);
      }
      holds.set(key, { holder, untilMs, settling: settling || settlingAlready, verifies });
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
      // The same payment verified for another request, which may be being served, keeps its hold.
      let kept = false;
      let untilMs = 0;
      for (const key of keys) {
        const hold = holds.get(key);
        if (hold && live.includes(key) && hold.verifies > 1) {
          hold.verifies -= 1;
          kept = true;
        } else {
          if (hold && live.includes(key)) untilMs = Math.max(untilMs, hold.untilMs);
          drop(key);
        }
      }
      if (kept) return "verified_again";
      if (live.length === 0) return "not_held";
      rememberGivenUp(holder, untilMs);
      return "released";
    },
    gaveUp(holder) {
      const until = givenUp.get(holder);
      if (until === undefined) return false;
      if (until > now()) return true;
      givenUp.delete(holder);
      return false;
    },
    get size() {
      return holds.size;
    },
  };
}
