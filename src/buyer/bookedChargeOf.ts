/**
 * What a successful settlement is booked as charged: an exact payment moves its signed price
 * whatever its receipt states; upto and a channel voucher what the receipt states, or the
 * request's maximum when it does not say.
 */
export function bookedChargeOf(
  offer: { scheme: string; amount: string },
  statedAtomic: bigint | undefined,
): bigint {
  if (offer.scheme === "exact" || statedAtomic === undefined) return BigInt(offer.amount);
  return statedAtomic;
}

/**
 * What a settlement response states was charged: `amount`, or for a channel `extra.chargedAmount`
 * (its `amount` is a deposit's, or empty for a voucher); undefined when it does not say.
 */
export function statedChargeOf(
  settled: { amount?: string | undefined; extra?: Record<string, unknown> | undefined },
  offer: { scheme: string },
): bigint | undefined {
  const stated = offer.scheme === "batch-settlement" ? settled.extra?.chargedAmount : settled.amount;
  return typeof stated === "string" && /^[0-9]+$/.test(stated) ? BigInt(stated) : undefined;
}
