import assert from "node:assert/strict";
import type { Hex } from "viem";
import type { PaymentRecord } from "../../src/ledger/index.js";
import { decodePaymentRequiredHeader } from "../../src/protocol/index.js";
import type { GatewayHarness } from "./gatewayHarness.js";
import { type HostilePaymentParameters, signHostilePayment } from "./hostileBuyer.js";

/** One SSE `data:` payload of a stream, parsed when it is JSON. */
export type StreamEvent = { data: string; json: Record<string, unknown> | undefined };

/** The `data:` events of an SSE body, in order. */
export function sseEvents(text: string): StreamEvent[] {
  return text
    .split(/\n\n/)
    .map((block) =>
      block
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n"),
    )
    .filter((data) => data.length > 0)
    .map((data) => {
      try {
        return { data, json: JSON.parse(data) as Record<string, unknown> };
      } catch {
        return { data, json: undefined };
      }
    });
}

/** Posts JSON to a gateway route, with extra headers. */
export function postJson(
  h: GatewayHarness,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${h.gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** The 402 of an unpaid request: its raw header and the upto (or given scheme's) offer amount. */
export async function quoteOf(
  h: GatewayHarness,
  path: string,
  body: unknown,
  scheme = "upto",
): Promise<{ header: string; amount: bigint; pricing: Record<string, unknown> | undefined }> {
  const response = await postJson(h, path, body);
  const text = await response.text();
  assert.equal(response.status, 402, text);
  const header = response.headers.get("payment-required");
  assert.ok(header, "a 402 carries PAYMENT-REQUIRED");
  const decoded = decodePaymentRequiredHeader(header);
  assert.ok(decoded.ok);
  const offer = decoded.paymentRequired.accepts.find((candidate) => candidate.scheme === scheme);
  assert.ok(offer, `an ${scheme} offer`);
  return { header, amount: BigInt(offer.amount), pricing: offer.extra?.pricing as Record<string, unknown> };
}

/** Asks for the 402, signs it for real with the given bends, and sends the paid request. */
export async function payFor(
  h: GatewayHarness,
  path: string,
  body: unknown,
  privateKey: Hex,
  bends: Omit<HostilePaymentParameters, "paymentRequired" | "privateKey"> = {},
): Promise<{ response: Response; offeredAtomic: bigint }> {
  const quote = await quoteOf(h, path, body, bends.scheme ?? "upto");
  const signature = await signHostilePayment({ paymentRequired: quote.header, privateKey, ...bends });
  const response = await postJson(h, path, body, { "payment-signature": signature });
  return { response, offeredAtomic: quote.amount };
}

/** The newest ledger row once its money is final (settled, zero, debt or failed). */
export async function finalRow(h: GatewayHarness): Promise<PaymentRecord> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    if (row && ["settled", "zero", "debt", "failed"].includes(row.status)) return row;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const [row] = await h.ledger.payments.recent({ limit: 1 });
  assert.fail(`the newest payment never became final (status ${row?.status})`);
}
