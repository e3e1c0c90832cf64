import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import {
  type DecodedPaymentPayload,
  decodePaymentSignatureHeader,
  encodeBase64Json,
  type PaymentRequired,
  paymentRequiredSchema,
  type SettleResponse,
  settleResponseSchema,
} from "../protocol/index.js";

/**
 * `_meta` key of a tool call carrying the x402 `PaymentPayload`.
 * @see https://github.com/x402-foundation/x402/blob/main/specs/transports-v2/mcp.md
 */
export const MCP_PAYMENT_META_KEY = "x402/payment";

/** `_meta` key of a tool result carrying the x402 settlement response. */
export const MCP_PAYMENT_RESPONSE_META_KEY = "x402/payment-response";

/**
 * The tool result that asks for payment (the x402 MCP transport's tool-result binding): `isError`,
 * the `PaymentRequired` as `structuredContent`, and the same object as JSON in `content[0].text`.
 */
export function paymentRequiredResult(paymentRequired: PaymentRequired): CallToolResult {
  return {
    isError: true,
    structuredContent: paymentRequired as unknown as Record<string, unknown>,
    content: [{ type: "text", text: JSON.stringify(paymentRequired) }],
  };
}

/** The `PaymentRequired` of a tool result, from `structuredContent` or else `content[0].text`; undefined when it asks for none. */
export function readPaymentRequiredResult(result: {
  isError?: unknown;
  structuredContent?: unknown;
  content?: unknown;
}): PaymentRequired | undefined {
  if (result.isError !== true) return undefined;
  const structured = paymentRequiredSchema.safeParse(result.structuredContent);
  if (structured.success) return structured.data as PaymentRequired;
  const first = Array.isArray(result.content)
    ? (result.content[0] as { text?: unknown } | undefined)
    : undefined;
  if (typeof first?.text !== "string") return undefined;
  try {
    const parsed = paymentRequiredSchema.safeParse(JSON.parse(first.text));
    return parsed.success ? (parsed.data as PaymentRequired) : undefined;
  } catch {
    return undefined;
  }
}

export type ReadPaymentMetaReturnType =
  | { ok: true; payment: DecodedPaymentPayload }
  | { ok: false; reason: string; message: string }
  | undefined;

/**
 * The payment in a tool call's `_meta["x402/payment"]`, validated as strictly as the
 * `PAYMENT-SIGNATURE` header (same size limits, envelope and scheme payloads); undefined when absent.
 */
export function readPaymentMeta(meta: Record<string, unknown> | undefined): ReadPaymentMetaReturnType {
  const value = meta?.[MCP_PAYMENT_META_KEY];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "object" || Array.isArray(value)) {
    return {
      ok: false,
      reason: "invalid_payload",
      message: `_meta["${MCP_PAYMENT_META_KEY}"] must be an x402 PaymentPayload object`,
    };
  }
  const decoded = decodePaymentSignatureHeader(encodeBase64Json(value));
  if (!decoded.ok) {
    return {
      ok: false,
      reason: decoded.reason,
      message: `_meta["${MCP_PAYMENT_META_KEY}"]: ${decoded.message.replace(/^payment header: /, "")}`,
    };
  }
  return { ok: true, payment: decoded.payload };
}

/** The settlement response in a tool result's `_meta["x402/payment-response"]`, if valid. */
export function readPaymentResponseMeta(result: { _meta?: unknown }): SettleResponse | undefined {
  const meta = result._meta as Record<string, unknown> | undefined;
  const parsed = settleResponseSchema.safeParse(meta?.[MCP_PAYMENT_RESPONSE_META_KEY]);
  return parsed.success ? (parsed.data as SettleResponse) : undefined;
}
