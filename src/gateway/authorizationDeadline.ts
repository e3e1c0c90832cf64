/**
 * The last second (unix) at which a payment's authorization can still be settled: Permit2's
 * `deadline` (upto, and exact via Permit2) or EIP-3009's `validBefore` (exact), minus one since
 * EIP-3009 requires `block.timestamp < validBefore`. A gas-sponsoring EIP-2612 permit is submitted
 * with the settlement, so its own `deadline` bounds it too. Undefined for a payload of another shape.
 */
export function authorizationDeadline(payload: unknown): number | undefined {
  const own = ownDeadline(payload);
  const permit = (
    payload as { extensions?: { eip2612GasSponsoring?: { info?: { deadline?: unknown } } } } | null
  )?.extensions?.eip2612GasSponsoring?.info?.deadline;
  if (permit === undefined || own === undefined) return own;
  const permitDeadline = toSeconds(permit);
  return permitDeadline === undefined ? undefined : Math.min(own, permitDeadline);
}

function ownDeadline(payload: unknown): number | undefined {
  const inner = (payload as { payload?: Record<string, unknown> } | null)?.payload;
  if (typeof inner !== "object" || inner === null) return undefined;
  const permit2 = inner.permit2Authorization as { deadline?: unknown } | undefined;
  if (permit2 && permit2.deadline !== undefined) return toSeconds(permit2.deadline);
  const eip3009 = inner.authorization as { validBefore?: unknown } | undefined;
  if (eip3009 && eip3009.validBefore !== undefined) {
    const before = toSeconds(eip3009.validBefore);
    return before === undefined ? undefined : before - 1;
  }
  return undefined;
}

function toSeconds(value: unknown): number | undefined {
  if (typeof value !== "string" && typeof value !== "number") return undefined;
  try {
    const big = BigInt(value);
    return big > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(big);
  } catch {
    return undefined;
  }
}
