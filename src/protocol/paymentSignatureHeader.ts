import type { z } from "zod";
import {
  type Base64JsonLimits,
  DEFAULT_BASE64_JSON_LIMITS,
  decodeBase64Json,
  encodeBase64Json,
} from "./base64Json.js";
import { describeIssue } from "./describeIssue.js";
import { paymentPayloadEnvelopeSchema } from "./paymentSchemas.js";
import { addressSchema, evmNetworkSchema } from "./primitives.js";
import { ReasonCode } from "./reasonCodes.js";
import {
  exactEip3009PayloadSchema,
  exactPermit2PayloadSchema,
  uptoPermit2PayloadSchema,
} from "./schemePayloads.js";
import type { DecodedPaymentPayload, PaymentPayload } from "./types.js";

/** `\u0000` as an escape, not as a backslash written out (`\\u0000`): an even run of backslashes before it. */
const ESCAPED_NUL = /(?:^|[^\\])(?:\\\\)*\\u0000/;

export type DecodePaymentSignatureHeaderReturnType =
  | { ok: true; payload: DecodedPaymentPayload }
  | { ok: false; reason: ReasonCode; message: string; field?: string };

/** Encodes a payment for the `PAYMENT-SIGNATURE` header (standard base64 of the JSON). */
export function encodePaymentSignatureHeader(payload: PaymentPayload): string {
  return encodeBase64Json(payload);
}

/**
 * Decodes and fully validates an untrusted `PAYMENT-SIGNATURE` (or v1 `X-PAYMENT`) header value:
 * size, base64, JSON, the x402 v2 envelope, and the `upto` / `exact` EVM payload shapes.
 * Never throws; a failure carries a stable `reason`, a `message` for people and the `field`.
 * @example
 * const decoded = decodePaymentSignatureHeader(readPaymentHeader(request.headers));
 * if (!decoded.ok) return c.json({ error: decoded.reason, message: decoded.message }, 400);
 */
export function decodePaymentSignatureHeader(
  value: string | null | undefined,
  limits: Base64JsonLimits = DEFAULT_BASE64_JSON_LIMITS,
): DecodePaymentSignatureHeaderReturnType {
  if (value === null || value === undefined || value.trim() === "") {
    return { ok: false, reason: ReasonCode.paymentHeaderMissing, message: "no payment header" };
  }
  const json = decodeBase64Json(value, limits);
  if (!json.ok) return { ok: false, reason: json.reason, message: `payment header: ${json.message}` };
  // No x402 field holds U+0000, and PostgreSQL cannot store it in JSON text: refused before any work.
  if (json.text.includes("\\u0000") && ESCAPED_NUL.test(json.text))
    return { ok: false, reason: ReasonCode.invalidPayload, message: "a string contains a NUL character" };

  const raw = json.value;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, reason: ReasonCode.invalidPayload, message: "payment header: not a JSON object" };
  }
  const version = (raw as { x402Version?: unknown }).x402Version;
  if (version !== 2) {
    return {
      ok: false,
      reason: ReasonCode.invalidX402Version,
      message: `x402Version: expected 2, got ${JSON.stringify(version) ?? "nothing"}`,
      field: "x402Version",
    };
  }

  const envelope = paymentPayloadEnvelopeSchema.safeParse(raw);
  if (!envelope.success) return invalid(ReasonCode.invalidPayload, envelope.error);
  const { accepted, payload } = envelope.data;

  if (accepted.scheme !== "upto" && accepted.scheme !== "exact" && accepted.scheme !== "batch-settlement") {
    return {
      ok: false,
      reason: ReasonCode.unsupportedScheme,
      message: `accepted.scheme: "${accepted.scheme}" is not supported (upto, exact, batch-settlement)`,
      field: "accepted.scheme",
    };
  }
  const network = evmNetworkSchema.safeParse(accepted.network);
  if (!network.success) return invalid(ReasonCode.invalidNetwork, network.error, "accepted.network");
  const asset = addressSchema.safeParse(accepted.asset);
  if (!asset.success) return invalid(ReasonCode.invalidPayload, asset.error, "accepted.asset");
  const payTo = addressSchema.safeParse(accepted.payTo);
  if (!payTo.success) return invalid(ReasonCode.invalidPayload, payTo.error, "accepted.payTo");

  // A channel payload (deposit, voucher, refund) is checked by the gateway's channel billing.
  if (accepted.scheme === "batch-settlement")
    return { ok: true, payload: envelope.data as DecodedPaymentPayload };
  const schema =
    accepted.scheme === "upto"
      ? uptoPermit2PayloadSchema
      : "permit2Authorization" in payload
        ? exactPermit2PayloadSchema
        : exactEip3009PayloadSchema;
  const schemePayload = schema.safeParse(payload);
  if (!schemePayload.success) return invalid(ReasonCode.invalidPayload, schemePayload.error, "payload");

  // The checks above established every narrowing this cast states.
  const decoded = { ...envelope.data, payload: schemePayload.data } as DecodedPaymentPayload;
  return { ok: true, payload: decoded };
}

function invalid(
  reason: ReasonCode,
  error: z.ZodError,
  prefix?: string,
): Extract<DecodePaymentSignatureHeaderReturnType, { ok: false }> {
  const { field, message } = describeIssue(error, prefix);
  return { ok: false, reason, message, field };
}
