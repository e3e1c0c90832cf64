// The bench's buyer: one OpenAI-style request, paid through x402 (402 → sign → paid retry) or direct,
// timed piece by piece, with the settlement checked so a failed payment never counts as served.
import { x402Client } from "@x402/core/client";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { parseReceiptEvent, RECEIPT_FIELD } from "../src/protocol/index.js";
import { benchMaxTokens } from "./settings.js";

export type Variant = "direct" | "tollgate" | "official";
export const variants: readonly Variant[] = ["direct", "tollgate", "official"];

/** Timings of one request, in milliseconds from the start of the buyer's flow. */
export type RequestTiming = {
  ok: boolean;
  error?: string;
  /** The unpaid request answered 402 (0 for direct). */
  paymentRequiredMs: number;
  /** Building and signing the payment (0 for direct). */
  signMs: number;
  /** First content token (streaming) or full body (non-streaming), from the flow's start. */
  ttftMs: number;
  /** Same, from sending the paid request. */
  paidTtftMs: number;
  /** Whole response read, from the flow's start. */
  totalMs: number;
  /** Same, from sending the paid request. */
  paidTotalMs: number;
  /** Settled amount and transaction, as the receipt or PAYMENT-RESPONSE says. */
  settledAmount?: string;
  transaction?: string;
};

export type BenchBuyer = { privateKey: Hex; client: x402Client };

/** The official x402 client with `@x402/evm`'s upto scheme, for one key. */
export function createBenchBuyer(privateKey: Hex, network: `eip155:${number}`): BenchBuyer {
  const client = x402Client.fromConfig({
    schemes: [{ network, client: new UptoEvmScheme(privateKeyToAccount(privateKey)) }],
    spendControls: false,
  });
  return { privateKey, client };
}

export type SendRequestParameters = {
  /** Base URL including `/v1`. */
  baseUrl: string;
  model: string;
  stream: boolean;
  /** Undefined for direct (no billing). */
  buyer?: BenchBuyer;
};

let sequence = 0;

/** One chat completion through the buyer's whole flow; never throws (failures come back as `ok: false`). */
export async function sendRequest({
  baseUrl,
  model,
  stream,
  buyer,
}: SendRequestParameters): Promise<RequestTiming> {
  const url = `${baseUrl}/chat/completions`;
  const body = JSON.stringify({
    model,
    messages: [{ role: "user", content: `bench request ${sequence++}: write a few words about tolls` }],
    max_tokens: benchMaxTokens,
    stream,
    ...(stream ? { stream_options: { include_usage: true } } : {}),
  });
  const headers: Record<string, string> = { "content-type": "application/json" };
  const startedAt = performance.now();
  const timing: RequestTiming = {
    ok: false,
    paymentRequiredMs: 0,
    signMs: 0,
    ttftMs: Number.NaN,
    paidTtftMs: Number.NaN,
    totalMs: Number.NaN,
    paidTotalMs: Number.NaN,
  };
  try {
    if (buyer) {
      const unpaid = await fetch(url, { method: "POST", headers, body });
      await unpaid.arrayBuffer();
      if (unpaid.status !== 402) return fail(timing, `expected 402, got ${unpaid.status}`);
      const required = decodePaymentRequiredHeader(unpaid.headers.get("payment-required") ?? "");
      timing.paymentRequiredMs = performance.now() - startedAt;
      const signingAt = performance.now();
      const payload = await buyer.client.createPaymentPayload(required);
      headers["payment-signature"] = encodePaymentSignatureHeader(payload);
      timing.signMs = performance.now() - signingAt;
    }
    const paidAt = performance.now();
    const response = await fetch(url, { method: "POST", headers, body });
    if (response.status !== 200) {
      const text = await response.text();
      return fail(timing, `status ${response.status}: ${text.slice(0, 200)}`);
    }
    const read = stream ? await readStream(response, paidAt) : await readJson(response, paidAt);
    const endAt = performance.now();
    timing.paidTtftMs = read.firstTokenAt - paidAt;
    timing.ttftMs = read.firstTokenAt - startedAt;
    timing.paidTotalMs = endAt - paidAt;
    timing.totalMs = endAt - startedAt;
    if (read.tokens === 0) return fail(timing, "no content tokens");
    if (!buyer) {
      timing.ok = true;
      return timing;
    }
    // Tollgate streams carry the receipt as the last event; everything else has PAYMENT-RESPONSE.
    const header = response.headers.get("payment-response");
    const settlement = read.receipt ?? (header ? decodePaymentResponseHeader(header) : undefined);
    if (!settlement) return fail(timing, "no settlement receipt");
    if (!settlement.success) return fail(timing, `settlement failed: ${settlement.errorReason ?? "?"}`);
    timing.settledAmount = settlement.amount;
    timing.transaction = settlement.transaction;
    timing.ok = true;
    return timing;
  } catch (error) {
    return fail(timing, String(error));
  }
}

function fail(timing: RequestTiming, error: string): RequestTiming {
  timing.ok = false;
  timing.error = error;
  return timing;
}

type ReadResult = {
  firstTokenAt: number;
  tokens: number;
  receipt?: { success: boolean; errorReason?: string; amount?: string; transaction: string };
};

async function readJson(response: Response, paidAt: number): Promise<ReadResult> {
  const json = (await response.json()) as { choices?: Array<{ message?: { content?: string } }> };
  const at = performance.now();
  const content = json.choices?.[0]?.message?.content ?? "";
  return { firstTokenAt: Math.max(at, paidAt), tokens: content.length > 0 ? 1 : 0 };
}

/** Reads an OpenAI SSE stream: when the first content token arrived, how many came, and any receipt. */
async function readStream(response: Response, paidAt: number): Promise<ReadResult> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const result: ReadResult = { firstTokenAt: paidAt, tokens: 0 };
  let buffered = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let newline = buffered.indexOf("\n");
    while (newline >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf("\n");
      if (!line.startsWith("data: {")) continue;
      if (line.includes(RECEIPT_FIELD)) {
        const parsed = parseReceiptEvent(line);
        if (parsed.ok) result.receipt = parsed.receipt;
        continue;
      }
      const chunk = JSON.parse(line.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> };
      const content = chunk.choices?.[0]?.delta?.content;
      if (content) {
        if (result.tokens === 0) result.firstTokenAt = performance.now();
        result.tokens++;
      }
    }
  }
  return result;
}
