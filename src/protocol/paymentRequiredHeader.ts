import {
  type Base64JsonLimits,
  DEFAULT_BASE64_JSON_LIMITS,
  decodeBase64Json,
  encodeBase64Json,
} from "./base64Json.js";
import { describeIssue } from "./describeIssue.js";
import { paymentRequiredSchema } from "./paymentSchemas.js";
import { ReasonCode } from "./reasonCodes.js";
import type { PaymentRequired } from "./types.js";

export type DecodePaymentRequiredHeaderReturnType =
  | { ok: true; paymentRequired: PaymentRequired }
  | { ok: false; reason: ReasonCode; message: string; field?: string };

/** Encodes a 402's `PaymentRequired` for the `PAYMENT-REQUIRED` header. */
export function encodePaymentRequiredHeader(paymentRequired: PaymentRequired): string {
  return encodeBase64Json(paymentRequired);
}

/**
 * Decodes and validates a seller's `PAYMENT-REQUIRED` header (x402 v2 only). Never throws.
 * @example
 * const required = decodePaymentRequiredHeader(response.headers.get(PAYMENT_REQUIRED_HEADER));
 */
export function decodePaymentRequiredHeader(
  value: string | null | undefined,
  limits: Base64JsonLimits = DEFAULT_BASE64_JSON_LIMITS,
): DecodePaymentRequiredHeaderReturnType {
  if (value === null || value === undefined || value.trim() === "") {
    return { ok: false, reason: ReasonCode.paymentHeaderMissing, message: "no PAYMENT-REQUIRED header" };
  }
  const json = decodeBase64Json(value, limits);
  if (!json.ok) return { ok: false, reason: json.reason, message: `PAYMENT-REQUIRED: ${json.message}` };
  const parsed = paymentRequiredSchema.safeParse(json.value);
  if (!parsed.success) {
    const { field, message } = describeIssue(parsed.error);
    const reason =
      field === "x402Version" ? ReasonCode.invalidX402Version : ReasonCode.invalidPaymentRequirements;
    return { ok: false, reason, message, field };
  }
  return { ok: true, paymentRequired: parsed.data };
}
