/** Where a paid request stands; see design.md "State" and "Failure semantics". */
export type PaymentStatus =
  | "claimed"
  | "serving"
  | "metered"
  | "settling"
  | "settled"
  | "zero"
  | "debt"
  | "failed";

/** Every status, in lifecycle order. */
export const paymentStatuses: readonly PaymentStatus[] = [
  "claimed",
  "serving",
  "metered",
  "settling",
  "settled",
  "zero",
  "debt",
  "failed",
];

/**
 * The one table of allowed moves:
 * claimed → serving → metered → settling → settled | zero | debt; claimed | serving → failed
 * (nothing was served, nothing is charged); debt → settled (the debt was paid later); settled → debt
 * (the chain took its settlement back: a reorganised block).
 */
export const paymentTransitions: Readonly<Record<PaymentStatus, readonly PaymentStatus[]>> = {
  claimed: ["serving", "failed"],
  serving: ["metered", "failed"],
  metered: ["settling"],
  settling: ["settled", "zero", "debt"],
  debt: ["settled"],
  settled: ["debt"],
  zero: [],
  failed: [],
};

/** Statuses a restarted gateway must finish: the request was claimed but its money is not final. */
export const pendingPaymentStatuses: readonly PaymentStatus[] = ["claimed", "serving", "metered", "settling"];

/** True when a payment may move from `from` to `to`. */
export function canTransitionPayment(from: PaymentStatus, to: PaymentStatus): boolean {
  return paymentTransitions[from].includes(to);
}

/**
 * True for statuses whose money is final: nothing more happens to the row (a settled row's money is final
 * unless the chain takes its transaction back, so it is not among them).
 */
export function isFinalPaymentStatus(status: PaymentStatus): boolean {
  return paymentTransitions[status].length === 0;
}

/** Narrows a string read from the database or an operator to a `PaymentStatus`. */
export function isPaymentStatus(value: unknown): value is PaymentStatus {
  return typeof value === "string" && (paymentStatuses as readonly string[]).includes(value);
}
