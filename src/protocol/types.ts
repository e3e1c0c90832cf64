import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import type { ExactPayload, UptoPermit2Payload } from "./schemePayloads.js";

/** The x402 v2 wire types, as `@x402/core` defines them. */
export type {
  Network,
  PaymentPayload,
  PaymentRequired,
  PaymentRequirements,
  ResourceInfo,
  SettleResponse,
  VerifyResponse,
} from "@x402/core/types";

/** Requirements on an EVM network, as the `upto` and `exact` EVM schemes need them. */
export type EvmPaymentRequirements = PaymentRequirements & {
  network: `eip155:${string}`;
  asset: `0x${string}`;
  payTo: `0x${string}`;
};

/** A validated v2 payment for the `upto` scheme. */
export type UptoPaymentPayload = PaymentPayload & {
  x402Version: 2;
  accepted: EvmPaymentRequirements & { scheme: "upto" };
  payload: UptoPermit2Payload;
};

/** A validated v2 payment for the `exact` scheme (EIP-3009 or Permit2). */
export type ExactPaymentPayload = PaymentPayload & {
  x402Version: 2;
  accepted: EvmPaymentRequirements & { scheme: "exact" };
  payload: ExactPayload;
};

/** What `decodePaymentSignatureHeader` yields: a payment whose every field has been checked. */
export type DecodedPaymentPayload = UptoPaymentPayload | ExactPaymentPayload;
