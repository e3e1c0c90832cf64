/**
 * The chain's clock for admission, read from its latest block at most once every `refreshMs`: between
 * reads it is the host's clock plus the offset the last read found (a chain's clock does not jump; a
 * host's drifts slowly). Concurrent calls share one read; a failed read is not kept.
 */
export function createChainClock(
  readBlockSeconds: () => Promise<number>,
  { refreshMs = 5_000, now = Date.now }: { refreshMs?: number; now?: () => number } = {},
): () => Promise<number> {
  let last: { offsetSeconds: number; readAt: number } | undefined;
  let reading: Promise<number> | undefined;
  return () => {
    const at = now();
    if (last && at - last.readAt < refreshMs)
      return Promise.resolve(Math.floor(at / 1000) + last.offsetSeconds);
    reading ??= readBlockSeconds()
      .then((blockSeconds) => {
        const readAt = now();
        last = { offsetSeconds: blockSeconds - Math.floor(readAt / 1000), readAt };
        return blockSeconds;
      })
      .finally(() => {
        reading = undefined;
      });
    return reading;
  };
}
