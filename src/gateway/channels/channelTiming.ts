/**
 * How long a channel's on-chain state, read last, is trusted before a voucher makes the gateway read it
 * again (ms): a third of the withdraw delay, between 30 s and 5 min. A withdrawal started just after a
 * read goes unseen this long.
 */
export function onchainStateTrustMs(withdrawDelaySeconds: number): number {
  return Math.min(300_000, Math.max(30_000, Math.floor((withdrawDelaySeconds * 1000) / 3)));
}

/** Time left, past the latest a charge can be claimed, for the claim's transaction and clocks that differ (s). */
export const CLAIM_MARGIN_SECONDS = 60;

/**
 * The shortest withdraw delay under which every charge is claimed before a payer's withdrawal ends: a
 * withdrawal unseen for the trusted state's life, then a request accepted on that state running its
 * longest, then the claim round after its charge, and the margin.
 */
export function shortestSafeWithdrawDelaySeconds(
  withdrawDelaySeconds: number,
  claimIntervalSeconds: number,
  longestRequestSeconds: number,
): number {
  return Math.ceil(
    onchainStateTrustMs(withdrawDelaySeconds) / 1000 +
      longestRequestSeconds +
      claimIntervalSeconds +
      CLAIM_MARGIN_SECONDS,
  );
}
