/**
 * HTTP header names of x402. Header names are case-insensitive; these are the spellings the
 * spec uses.
 * @see https://github.com/x402-foundation/x402/blob/main/specs/transports-v2/http.md
 */

/** v2: the 402 response's base64 JSON `PaymentRequired`. */
export const PAYMENT_REQUIRED_HEADER = "PAYMENT-REQUIRED";

/** v2: the paid retry's base64 JSON `PaymentPayload`. */
export const PAYMENT_SIGNATURE_HEADER = "PAYMENT-SIGNATURE";

/** v2: the success response's base64 JSON settlement result. */
export const PAYMENT_RESPONSE_HEADER = "PAYMENT-RESPONSE";

/** v1's name for the payment header; the gateway accepts it as an alias of `PAYMENT-SIGNATURE`. */
export const LEGACY_PAYMENT_HEADER = "X-PAYMENT";

/** v1's name for the settlement header. */
export const LEGACY_PAYMENT_RESPONSE_HEADER = "X-PAYMENT-RESPONSE";

/** The headers that may carry a payment, in the order they are read. */
export const PAYMENT_HEADER_NAMES = [PAYMENT_SIGNATURE_HEADER, LEGACY_PAYMENT_HEADER] as const;

/** Headers the browser must be allowed to read (`Access-Control-Expose-Headers`). */
export const EXPOSED_PAYMENT_HEADERS = [PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE_HEADER] as const;

/** Anything with a case-insensitive `get`, such as the Fetch API's `Headers`. */
export type HeaderReader = { get(name: string): string | null | undefined };

/**
 * The payment header's value: `PAYMENT-SIGNATURE` when present, else the v1 `X-PAYMENT`.
 * @example
 * const value = readPaymentHeader(request.headers);
 * const decoded = decodePaymentSignatureHeader(value);
 */
export function readPaymentHeader(headers: HeaderReader): string | undefined {
  for (const name of PAYMENT_HEADER_NAMES) {
    const value = headers.get(name);
    if (value !== null && value !== undefined && value !== "") return value;
  }
  return undefined;
}
