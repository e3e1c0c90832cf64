import type { Logger } from "../errors/index.js";
import type { UsageUnit } from "../pricing/index.js";

/** What every billing event says: which request, which route, when. */
type BillingEventBase = {
  /** The request id the gateway answered with (`x-request-id`). */
  requestId: string;
  /** The gateway path, e.g. `/v1/chat/completions`. */
  route: string;
  /** `Date.now()` when it happened. */
  at: number;
};

/** A paid request's identity, once its payment is claimed in the ledger. */
type PaidRequest = BillingEventBase & {
  paymentId: number;
  model: string;
  scheme: string;
  asset: string;
  payer: string;
};

/**
 * The lifecycle of a billed request, emitted by the billing core (proxy, Hono and Express alike):
 * - `quoted`: no payment came; answered 402 with the offers;
 * - `refused`: answered without serving (400, 402, 503…), before anything ran;
 * - `replayed`: the authorization was already used (409);
 * - `verified`: the facilitator accepted the payment and the ledger claimed it; inference starts;
 * - `served`: the first output left for the buyer (a stream's first event, or the JSON answer);
 * - `metered`: the usage and its charge are recorded; settlement starts;
 * - `settled`: the facilitator settled the charge (or it was zero), before the ledger row records it;
 * - `debt`: settlement failed after delivery; the ledger records a debt;
 * - `failed`: nothing was delivered, nothing is charged.
 * Channel (`batch-settlement`) events: `channel_deposit`, `channel_claim`, `channel_settle`, `channel_refund`.
 */
export type BillingEvent =
  | (BillingEventBase & { type: "quoted"; model: string; status: 402; maxAtomic: string | undefined })
  | (BillingEventBase & {
      type: "refused";
      model: string | undefined;
      status: number;
      /** A Tollgate error code, or the x402 reason of a refused payment. */
      reason: string;
      /** Set when a payment came with the request. */
      scheme: string | undefined;
      /** How long the facilitator took, when it was asked. */
      verifyMs: number | undefined;
    })
  | (BillingEventBase & {
      type: "replayed";
      model: string;
      status: 409;
      scheme: string;
      paymentStatus: string;
    })
  | (PaidRequest & { type: "verified"; maxAtomic: bigint; verifyMs: number })
  | (PaidRequest & { type: "served"; stream: boolean; ttftMs: number })
  | (PaidRequest & {
      type: "metered";
      /** Usage per unit (`input_tokens`, `output_tokens`, `images`, `compute_ms`, …). */
      usage: Partial<Record<UsageUnit, number>>;
      chargeAtomic: bigint;
    })
  | (PaidRequest & { type: "settled"; chargeAtomic: bigint; transaction: string; settleMs: number })
  | (PaidRequest & { type: "debt"; chargeAtomic: bigint; reason: string; settleMs: number })
  | (PaidRequest & { type: "failed"; reason: string; status: number })
  | {
      /** A deposit into a channel (settled before the request it came with), a claim of its vouchers,
       * a sweep of its claimed funds to payTo, or a refund of its unspent balance to its payer (the
       * payer's cooperative refund, or the gateway's of an idle channel): one event per channel and
       * transaction. A claim booked from the chain (it landed, its answer was lost) has no
       * `transaction`: empty. */
      type: "channel_deposit" | "channel_claim" | "channel_settle" | "channel_refund";
      at: number;
      network: string;
      channelId: string;
      amountAtomic: bigint;
      transaction: string;
    };

export type BillingEventType = BillingEvent["type"];

/** A listener of billing events; called synchronously where the event happens, and must not throw. */
export type BillingEventListener = (event: BillingEvent) => void;

/** Several listeners as one. */
export function combineBillingListeners(
  ...listeners: Array<BillingEventListener | undefined>
): BillingEventListener | undefined {
  const present = listeners.filter((listener): listener is BillingEventListener => listener !== undefined);
  if (present.length === 0) return undefined;
  if (present.length === 1) return present[0];
  return function combinedBillingListener(event) {
    for (const listener of present) listener(event);
  };
}

/** Calls `listener` so that a throwing listener is logged, never breaks the request it observes. */
export function safeBillingEmitter(
  listener: BillingEventListener | undefined,
  logger: Logger,
): (event: BillingEvent) => void {
  if (!listener) return () => {};
  return function emitBillingEvent(event) {
    try {
      listener(event);
    } catch (error) {
      logger.warn({ event: event.type, error: String(error) }, "a billing event listener threw");
    }
  };
}
