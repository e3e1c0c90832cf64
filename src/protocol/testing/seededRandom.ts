/** A small deterministic generator for property tests (mulberry32); the same seed, the same run. */
export type SeededRandom = {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
  /** A bigint in [0, max], both inclusive. */
  bigint(max: bigint): bigint;
  pick<T>(items: readonly T[]): T;
};

export function seededRandom(seed: number): SeededRandom {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  const bigint = (max: bigint): bigint => {
    let value = 0n;
    for (let bits = 0n; 1n << bits <= max; bits += 16n) value = (value << 16n) | BigInt(int(0, 0xffff));
    return value % (max + 1n);
  };
  const pick = <T>(items: readonly T[]): T => {
    const item = items[int(0, items.length - 1)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  };
  return { next, int, bigint, pick };
}
