import type { GasSponsoringExtensionKey } from "./gasSponsoring.js";

/**
 * What the facilitator tells its listener, synchronously where it happens:
 * - `verified`: a payment was checked (valid or not);
 * - `settled`: the transfer is confirmed on chain, before the settlement log records it;
 * - `sponsored_approval`: the facilitator paid the gas of a buyer's Permit2 approval (the seller's cost).
 * `requestId` is the gateway's request id when the call carried one.
 */
export type FacilitatorEvent =
  | {
      type: "verified";
      network: string;
      scheme: string;
      valid: boolean;
      reason: string | undefined;
      durationMs: number;
      requestId: string | undefined;
    }
  | {
      type: "settled";
      network: string;
      scheme: string;
      transaction: string;
      amountAtomic: string;
      requestId: string | undefined;
    }
  | {
      type: "sponsored_approval";
      network: string;
      kind: GasSponsoringExtensionKey;
      payer: string;
      transaction: string;
      /** Native gas the facilitator spent on it: the settlement's, plus a relayed approve and its funding. */
      gasCostWei: bigint;
      requestId: string | undefined;
    };

/** A listener of facilitator events; it must not throw. */
export type FacilitatorEventListener = (event: FacilitatorEvent) => void;
