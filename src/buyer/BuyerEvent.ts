import type { ReceiptCheckStatus } from "../protocol/index.js";
import type { PolicyRefusal } from "./policyRefusal.js";
import type { DisputeReason } from "./SpendStore.js";

/** Token counts as a receipt reports them. */
export type ReportedUsage = {
  promptTokens: number;
  completionTokens: number;
  /** Usage per unit, when the seller itemizes it (`input_tokens`, `cached_input_tokens`, `images`, …). */
  units?: Record<string, number> | undefined;
};

/** What the paying fetch reports as it pays; `onEvent` receives each one. */
export type BuyerEvent =
  | {
      type: "authorized";
      paymentId: string;
      url: string;
      origin: string;
      scheme: string;
      network: string;
      asset: string;
      payTo: string;
      maxAtomic: bigint;
      expectedAtomic: bigint | undefined;
      /** True when the buyer paid on the first request, from prices it already knew. */
      firstRequest: boolean;
    }
  | {
      type: "receipt";
      paymentId: string;
      url: string;
      origin: string;
      source: "header" | "stream" | "mcp";
      success: boolean;
      errorReason: string | undefined;
      maxAtomic: bigint;
      chargedAtomic: bigint;
      /** `maxAtomic - chargedAtomic`: what upto saved over paying the maximum. */
      savedAtomic: bigint;
      transaction: string;
      /** A channel deposit this payment carried, whose transaction `transaction` is. */
      depositAtomic?: bigint | undefined;
      network: string;
      payer: string | undefined;
      usage: ReportedUsage | undefined;
      /** What checking the seller's signed receipts found (`absent` when it sent none). */
      signedReceipts: { status: ReceiptCheckStatus; signer: string | undefined; problems: string[] };
    }
  | { type: "released"; paymentId: string; origin: string; reason: string }
  | {
      /** Sent, but no receipt: the maximum stays reserved until the authorization's deadline. */
      type: "unreceipted";
      paymentId: string;
      origin: string;
      reason: string;
    }
  | {
      /** A channel voucher sent without a receipt, settled from the seller's later channel state. */
      type: "reconciled";
      paymentId: string;
      origin: string;
      channelId: string;
      maxAtomic: bigint;
      chargedAtomic: bigint;
    }
  | {
      type: "overcharge";
      paymentId: string;
      origin: string;
      reason: DisputeReason;
      chargedAtomic: bigint;
      justifiedAtomic: bigint | undefined;
      maxAtomic: bigint;
      transaction: string;
      network: string;
      usage: ReportedUsage | undefined;
      disputeId: number;
    }
  | { type: "refused"; url: string; origin: string; refusal: PolicyRefusal }
  | { type: "expired"; paymentId: string; origin: string };

/** Receives the paying fetch's events; must not throw (a throw is ignored). */
export type BuyerEventListener = (event: BuyerEvent) => void;
