import {
  type Base64JsonLimits,
  DEFAULT_BASE64_JSON_LIMITS,
  decodeBase64Json,
  encodeBase64Json,
} from "./base64Json.js";
import { describeIssue } from "./describeIssue.js";
import { settleResponseSchema } from "./paymentSchemas.js";
import { ReasonCode } from "./reasonCodes.js";
import type { SettleResponse } from "./types.js";

export type DecodePaymentResponseHeaderReturnType =
  | { ok: true; settleResponse: SettleResponse }
  | { ok: false; reason: ReasonCode; message: string; field?: string };

/**
 * Encodes a settlement result for the `PAYMENT-RESPONSE` header. Like `@x402/core`, it leaves
 * out `extensionResponses`, which are for the seller, not the buyer.
 */
export function encodePaymentResponseHeader(settleResponse: SettleResponse): string {
  const { extensionResponses: _sellerOnly, ...buyerFacing } = settleResponse;
  return encodeBase64Json(buyerFacing);
}

/** Decodes and validates a `PAYMENT-RESPONSE` header (the settlement receipt). Never throws. */
export function decodePaymentResponseHeader(
  value: string | null | undefined,
  limits: Base64JsonLimits = DEFAULT_BASE64_JSON_LIMITS,
): DecodePaymentResponseHeaderReturnType {
  if (value === null || value === undefined || value.trim() === "") {
    return { ok: false, reason: ReasonCode.receiptAbsent, message: "no PAYMENT-RESPONSE header" };
  }
  const json = decodeBase64Json(value, limits);
  if (!json.ok) return { ok: false, reason: json.reason, message: `PAYMENT-RESPONSE: ${json.message}` };
  const parsed = settleResponseSchema.safeParse(json.value);
  if (!parsed.success)
    return { ok: false, reason: ReasonCode.receiptInvalid, ...describeIssue(parsed.error) };
  return { ok: true, settleResponse: parsed.data };
}
