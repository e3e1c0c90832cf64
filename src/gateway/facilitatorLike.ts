import type {
  PaymentPayload,
  PaymentRequirements,
  SettleResponse,
  SupportedResponse,
  VerifyResponse,
} from "@x402/core/types";
import type { ReleaseResponse } from "../facilitator/index.js";

/** `signal`: the caller gave up (its bound passed): a relay that has not sent the approve's gas yet sends nothing. */
export type RelaySponsoredApprovalOptions = { signal?: AbortSignal | undefined };

/**
 * What the gateway needs of a facilitator: x402's `FacilitatorClient` shape. Both the
 * in-process facilitator and `HTTPFacilitatorClient` (a remote one, such as Polygon's) fit.
 */
export type FacilitatorLike = {
  verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse>;
  settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse>;
  getSupported(): Promise<SupportedResponse>;
  /**
   * Relays a verified payment's sponsored `approve` before it is served (the in-process facilitator's, or
   * a remote `tollgate facilitator`'s `POST /relay-approval`), or takes the payer's sponsored use for a
   * payment's EIP-2612 permit: why it cannot be served, or undefined. Another remote facilitator has none: it relays the approve when it settles, after the request was
   * served, so `erc20ApprovalGasSponsoring` is not offered on it (`createBilling`).
   */
  relaySponsoredApproval?(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    options?: RelaySponsoredApprovalOptions,
  ): Promise<string | undefined>;
  /**
   * Gives back what a verified payment holds at the facilitator (a `tollgate facilitator`'s EIP-2612
   * permit nonce and sponsored use, at `POST /release` when remote) once the seller drops it without
   * settling; see `releaseDroppedPayment`. Another facilitator has none.
   */
  release?(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    options?: RelaySponsoredApprovalOptions,
  ): Promise<ReleaseResponse>;
};
