import { decodePaymentSignatureHeader, type PaymentPayload } from "../../src/protocol/index.js";

/** A `fetch` that keeps every payment it sends (its `PAYMENT-SIGNATURE` header, decoded), to see what a client signed. */
export function recordingFetch(): { fetch: typeof fetch; payloads: PaymentPayload[] } {
  const payloads: PaymentPayload[] = [];
  const recording: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const header = request.headers.get("payment-signature");
    if (header) {
      const decoded = decodePaymentSignatureHeader(header);
      if (decoded.ok) payloads.push(decoded.payload);
    }
    return fetch(request);
  };
  return { fetch: recording, payloads };
}
