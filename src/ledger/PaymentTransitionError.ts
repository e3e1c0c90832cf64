import { TollgateError } from "../errors/index.js";
import type { PaymentStatus } from "./paymentStatus.js";

export type PaymentTransitionErrorParameters = {
  paymentId: number;
  /** The status the row had when the move was attempted. */
  from: PaymentStatus;
  to: PaymentStatus;
  /** `not_allowed`: the status machine forbids it; `concurrent`: another worker moved the row first. */
  reason: "not_allowed" | "concurrent";
};

/** A payment could not move between two statuses (TOLLGATE_LEDGER_FAILED); names from and to. */
export class PaymentTransitionError extends TollgateError {
  override name = "PaymentTransitionError";
  readonly paymentId: number;
  readonly from: PaymentStatus;
  readonly to: PaymentStatus;
  readonly reason: "not_allowed" | "concurrent";

  constructor({ paymentId, from, to, reason }: PaymentTransitionErrorParameters) {
    super({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage:
        reason === "not_allowed"
          ? `payment ${paymentId} cannot move from ${from} to ${to}`
          : `payment ${paymentId} was moved by another worker while moving from ${from} to ${to}`,
      details: { paymentId, from, to, reason },
    });
    this.paymentId = paymentId;
    this.from = from;
    this.to = to;
    this.reason = reason;
  }
}
