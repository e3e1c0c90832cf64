/**
 * What a payer may have the seller pay for, counted per payer: deposits below the channel minimum and
 * cooperative refunds (each a transaction at the seller's gas, per 24 h), and approvals whose gas the
 * facilitator sponsors (for good).
 */
export type PayerQuotaKind = "small_deposit" | "refund" | "sponsored_approval";

/** Which of a payer's uses count: of one kind, on one network, since `sinceMs` (all of them without). */
export type PayerQuotaScope = {
  kind: PayerQuotaKind;
  network: string;
  payer: string;
  sinceMs?: number | undefined;
};

/** A use taken, or the uses that left none to take (their times, oldest first). */
export type TakePayerQuotaResult = { taken: true; id: string } | { taken: false; usedAtMs: number[] };

/**
 * The uses of each payer's quotas, kept in the ledger when there is one: every replica on one database
 * counts the same uses, and a restart forgets none (`createPayerQuotas`; `createMemoryPayerQuotas` for a
 * process with no ledger).
 */
export type PayerQuotas = {
  /** The times of the payer's uses in scope, oldest first. */
  uses(scope: PayerQuotaScope): Promise<number[]>;
  /**
   * Takes one use at `atMs` if fewer than `limit` are in scope, atomically: two replicas taking the
   * last one at once get one use between them.
   */
  take(scope: PayerQuotaScope & { limit: number; atMs: number }): Promise<TakePayerQuotaResult>;
  /** Gives a use back: what it was taken for cost the seller nothing (nothing was sent). */
  giveBack(id: string): Promise<void>;
};
