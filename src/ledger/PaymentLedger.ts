import type { AuthorizationKeyInput } from "./normalizeAuthorizationKey.js";
import type { PaymentStatus } from "./paymentStatus.js";

/** One paid request, as the ledger holds it. Money is bigint in the token's atomic units. */
export type PaymentRecord = {
  id: number;
  network: string;
  /** Lower-case EVM address. */
  payer: string;
  /** Canonical decimal string of the authorization's nonce. */
  nonce: string;
  scheme: string;
  model: string;
  /** The gateway route that was paid for, e.g. `/v1/chat/completions`. */
  route: string;
  asset: string;
  payTo: string;
  maxAtomic: bigint;
  promptTokens: number | null;
  completionTokens: number | null;
  /** Usage per unit (`input_tokens`, `cached_input_tokens`, `output_tokens`, `images`, …) the charge was computed from. */
  usage: Record<string, number> | null;
  chargeAtomic: bigint | null;
  /** Settlement transaction hash; null until settled, and for a zero charge. */
  transaction: string | null;
  status: PaymentStatus;
  /** Why the row is `failed` or `debt` (kept after a debt is paid). */
  error: string | null;
  /** The x402 `PaymentPayload` exactly as the buyer sent it: enough to settle from the row alone. */
  paymentPayload: unknown;
  /** The x402 `PaymentRequirements` the payload was accepted against. */
  paymentRequirements: unknown;
  createdAt: Date;
  updatedAt: Date;
  settledAt: Date | null;
  /** The gateway's request id (`x-request-id`) of the request that claimed it. */
  requestId: string | null;
};

/** What the gateway knows when it claims an authorization, before serving. */
export type ClaimPaymentInput = AuthorizationKeyInput & {
  scheme: string;
  model: string;
  route: string;
  asset: string;
  payTo: string;
  maxAtomic: bigint;
  /** JSON-serialisable x402 `PaymentPayload`. */
  paymentPayload: unknown;
  /** JSON-serialisable x402 `PaymentRequirements`. */
  paymentRequirements: unknown;
  /** The gateway's request id, kept on the row. */
  requestId?: string | undefined;
};

export type ClaimPaymentOptions = {
  /** Claim straight into `serving` (claimed and started in one statement) when inference starts at once. */
  serving?: boolean | undefined;
  /** The row's id, from `allocateUnlessInDebt`; default the next one. */
  id?: number | undefined;
};

/** How `claimWithinFunds` counts the funds it was given. */
export type ClaimWithinFundsOptions = ClaimPaymentOptions & {
  /**
   * When the funds were read (ms since the epoch, by the database's clock, or earlier): the charges of the
   * payer's payments settled since then are taken off them too, as the read may not show them.
   */
  settledSinceMs?: number | undefined;
  /**
   * The funds are capped by the payer's Permit2 allowance, read with them: a payment of the payer carrying
   * an EIP-2612 permit settled since `settledSinceMs` set that allowance anew (to its permit's amount, less
   * its charge), so the claim is refused until the funds are read again.
   */
  allowanceRead?: boolean | undefined;
};

/** What the gateway asks before it verifies a payment: does the payer owe, and was this authorization seen. */
export type PaymentAdmission = {
  /** The payer has an unpaid debt on this network. */
  inDebt: boolean;
  /** The row that already holds this authorization (a replay), if any. */
  existing: { id: number; status: PaymentStatus } | undefined;
};

/** A claim either wins the authorization or finds who already holds it (a replay). */
export type ClaimPaymentResult =
  | { claimed: true; payment: PaymentRecord }
  | { claimed: false; existing: PaymentRecord };

/**
 * A claim within funds may also find the payer's funds already reserved by its payments in flight and its
 * debts that may still be settled.
 */
export type ClaimWithinFundsResult =
  | ClaimPaymentResult
  | {
      claimed: false;
      existing: undefined;
      /**
       * The maxima reserved, the charges settled since `settledSinceMs`, and the most any of those
       * payments or this one needs above its maximum (an upto payment is settled only once its payer
       * holds all it was signed for).
       */
      reservedAtomic: bigint;
      fundsAtomic: bigint;
      /** Refused because a payment carrying an EIP-2612 permit would not be in flight alone. */
      permitInFlight: boolean;
      /** Of `reservedAtomic`, the charges settled since `settledSinceMs` (the funds read may already show them). */
      settledSinceAtomic: bigint;
      /** The database's clock when the refusal was read (ms): funds read after it show every settlement counted. */
      checkedAtMs: number;
    };

/** What a request actually used: token totals and, when known, every unit. */
export type TokenUsage = {
  promptTokens: number;
  completionTokens: number;
  /** Usage per unit; defaults to the token totals as `input_tokens` and `output_tokens`. */
  units?: Record<string, number> | undefined;
};

/** The facilitator's answer for a settled charge; `transaction` is empty for a zero charge. */
export type SettledCharge = {
  transaction: string;
  chargeAtomic: bigint;
};

/** Money and counts for one model. */
export type PaymentModelTotals = {
  model: string;
  /** Rows of any status. */
  count: number;
  /** Sum of the authorized maximums, every row. */
  authorizedAtomic: bigint;
  /** Sum of the charges that were settled on chain (status `settled`). */
  chargedAtomic: bigint;
  /** Sum of the charges delivered but not paid (status `debt`). */
  owedAtomic: bigint;
  byStatus: Record<PaymentStatus, number>;
};

export type PendingForRecoveryOptions = {
  /** Only rows untouched since this instant, so a replica does not grab requests another is still serving. */
  updatedBefore?: Date | undefined;
  /** Only rows untouched this long, by the database's clock (the one that wrote `updated_at`). */
  untouchedForMs?: number | undefined;
};

export type PaymentsByStatusOptions = {
  /** Only rows with a larger id (paging). */
  afterId?: number | undefined;
  /** Default 500, at most 5000. */
  limit?: number | undefined;
};

export type SettledSinceOptions = {
  /** The last row of the previous page: its `settledAt` and `id`. */
  after?: { settledAt: Date; id: number } | undefined;
  untouchedForMs: number;
  withinSeconds: number;
  /** Default 500, at most 5000. */
  limit?: number | undefined;
};

export type RecentPaymentsOptions = {
  /** Default 50, at most 1000. */
  limit?: number | undefined;
};

/**
 * The gateway's payment ledger: one row per paid request, keyed by (network, payer, nonce), moving through
 * claimed → serving → metered → settling → settled | zero | debt | failed (see `paymentTransitions`).
 * Every move is conditional on the row's current status, so two workers can never both move one row;
 * a refused move throws `PaymentTransitionError`.
 */
export interface PaymentLedger {
  /** Claims an authorization atomically; a replay (sequential or concurrent) gets `claimed: false`. */
  claim(input: ClaimPaymentInput, options?: ClaimPaymentOptions): Promise<ClaimPaymentResult>;
  /**
   * Claims like `claim`, but only if the maxima of the payer's payments still in flight (claimed,
   * serving, metered, settling) and of its debts whose authorizations may still be settled (recovery
   * settles them again), plus this one, fit in `fundsAtomic` (what the payer's authorizations draw on),
   * with room left for the one settled last to find all it was signed for (an upto payment signed above
   * its maximum needs that much to settle), so concurrent requests are never served beyond what the
   * payer can settle. A payment
   * carrying an EIP-2612 permit is claimed only with none other of its payer in flight, and none is
   * claimed beside it (its permit resets the allowance the others draw on). The check and the insert
   * hold one per-payer lock, on every replica sharing the database.
   */
  claimWithinFunds(
    input: ClaimPaymentInput,
    fundsAtomic: bigint,
    options?: ClaimWithinFundsOptions,
  ): Promise<ClaimWithinFundsResult>;
  /**
   * A new payment id for the payer, or undefined when it owes on the network (`hasOpenDebt`), so a
   * request can be refused before it is served and its row written while it is served. One statement
   * on a shared database; on one only this process holds (PGlite), no statement: its debts are
   * counted as they are marked and resolved, its short channels as they are written, and ids are
   * taken from the sequence a block at a time.
   */
  allocateUnlessInDebt(key: Pick<AuthorizationKeyInput, "network" | "payer">): Promise<number | undefined>;
  /** `hasOpenDebt` and `findByKey`'s status together, in one statement: asked before every verify. */
  admission(key: AuthorizationKeyInput): Promise<PaymentAdmission>;
  get(id: number): Promise<PaymentRecord | undefined>;
  findByKey(key: AuthorizationKeyInput): Promise<PaymentRecord | undefined>;
  /** claimed → serving: inference starts. */
  markServing(id: number): Promise<PaymentRecord>;
  /** serving → metered, with the usage and the charge it costs (≤ the maximum). */
  recordUsage(id: number, usage: TokenUsage, chargeAtomic: bigint): Promise<PaymentRecord>;
  /** metered → settling: the settle call is about to be made. */
  markSettling(id: number): Promise<PaymentRecord>;
  /** settling → settled, or → zero when the charge is 0 (no transaction); also pays a debt. */
  markSettled(id: number, settled: SettledCharge): Promise<PaymentRecord>;
  /**
   * settling → debt: delivered, settlement failed; the payer is refused until it is paid, unless
   * `blocksPayer` is false (the payer did not cause it: its authorization lapsed before the seller
   * settled it).
   */
  markDebt(id: number, reason: string, options?: { blocksPayer?: boolean }): Promise<PaymentRecord>;
  /**
   * settled → debt, when the chain no longer holds the row's settlement `transaction` (a reorganised
   * block): the charge is owed again, and settled again while its authorization is valid. The payer,
   * who did not cause it, is not refused for it.
   */
  markTakenBack(id: number, taken: { transaction: string; reason: string }): Promise<PaymentRecord>;
  /** claimed | serving → failed: nothing was served, nothing is charged. */
  markFailed(id: number, reason: string): Promise<PaymentRecord>;
  /** debt → settled, keeping the recorded charge. */
  resolveDebt(id: number, transaction: string): Promise<PaymentRecord>;
  /** Unpaid debts, oldest first, optionally of one payer (any network). */
  openDebts(payer?: string): Promise<PaymentRecord[]>;
  /**
   * Whether the payer owes on this network: an unpaid debt, or a channel whose escrow holds less than
   * was charged on it (its payer withdrew before the charges were claimed; paid by a deposit into that
   * channel). Index-backed, meant for every request.
   */
  hasOpenDebt(network: string, payer: string): Promise<boolean>;
  /**
   * Marks a claimed or serving payment as still being worked on (`updated_at = now()`), so that recovery on a
   * sibling replica, which only touches rows older than its grace period, leaves a long stream alone.
   * Returns false when the row has moved on.
   */
  touch(id: number): Promise<boolean>;
  /** Rows in one status, oldest first, a page at a time (e.g. every `settled` row, for reconciliation). */
  listByStatus(status: PaymentStatus, options?: PaymentsByStatusOptions): Promise<PaymentRecord[]>;
  /**
   * `settled` rows booked (by the database's clock) in the last `withinSeconds` but at least
   * `untouchedForMs` ago, after `after` (the last row of the previous page), in booking order: the
   * settlements to read back from the chain once they are deep enough.
   */
  settledSince(options: SettledSinceOptions): Promise<PaymentRecord[]>;
  /** Rows in claimed, serving, metered or settling, oldest first: what a restart must finish. */
  pendingForRecovery(options?: PendingForRecoveryOptions): Promise<PaymentRecord[]>;
  /** Newest rows first, by when each was written (then by id). */
  recent(options?: RecentPaymentsOptions): Promise<PaymentRecord[]>;
  /** Per-model money and status counts, ordered by model. */
  totals(): Promise<PaymentModelTotals[]>;
}
