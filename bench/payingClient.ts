// The bench's buyer: one OpenAI-style request, paid through x402 (402 → sign → paid retry) or direct,
// timed piece by piece, with the settlement checked so a failed payment never counts as served.
import { x402Client, x402HTTPClient } from "@x402/core/client";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import type { PaymentPayload, SettleResponse } from "@x402/core/types";
import { isBatchSettlementDepositPayload, toClientEvmSigner } from "@x402/evm";
import {
  BatchSettlementEvmScheme,
  type ClientChannelStorage,
  InMemoryClientChannelStorage,
} from "@x402/evm/batch-settlement/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { createPublicClient, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { parseReceiptEvent, RECEIPT_FIELD } from "../src/protocol/index.js";
import { benchMaxTokens } from "./settings.js";

export type Variant = "direct" | "proxy" | "tollgate" | "official" | "channels";
export const variants: readonly Variant[] = ["direct", "proxy", "tollgate", "official", "channels"];
/** The variants nobody pays: the backend itself, and the bare proxy in front of it. */
export type UnpaidVariant = "direct" | "proxy";
export const isUnpaid = (variant: Variant): variant is UnpaidVariant =>
  variant === "direct" || variant === "proxy";

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
  /** A channel payment that deposited (its transaction is the deposit). */
  deposit?: boolean;
  /** A channel payment refused with the corrective 402, resynced and paid again. */
  resynced?: boolean;
};

type PaidScheme = "upto" | "batch-settlement";

/** One buyer key paying through the official x402 client with one scheme registered. */
export type BenchBuyer = {
  privateKey: Hex;
  scheme: PaidScheme;
  client: x402Client;
  http: x402HTTPClient;
  /** The batch-settlement client's channel records (channels only). */
  channels?: ClientChannelStorage;
};

/** The official x402 client with `@x402/evm`'s upto scheme, for one key. */
export function createBenchBuyer(privateKey: Hex, network: `eip155:${number}`): BenchBuyer {
  const client = x402Client.fromConfig({
    schemes: [{ network, client: new UptoEvmScheme(privateKeyToAccount(privateKey)) }],
    spendControls: false,
  });
  return { privateKey, scheme: "upto", client, http: new x402HTTPClient(client) };
}

/**
 * The official x402 client with `@x402/evm`'s batch-settlement scheme, for one key: one channel,
 * kept in memory across requests as the official client keeps it.
 */
export function createChannelBenchBuyer(
  privateKey: Hex,
  network: `eip155:${number}`,
  rpcUrl: string,
): BenchBuyer {
  const signer = toClientEvmSigner(
    privateKeyToAccount(privateKey),
    createPublicClient({ transport: http(rpcUrl) }),
  );
  const channels = new InMemoryClientChannelStorage();
  const client = x402Client.fromConfig({
    schemes: [{ network, client: new BatchSettlementEvmScheme(signer, { storage: channels }) }],
    spendControls: false,
  });
  return { privateKey, scheme: "batch-settlement", client, http: new x402HTTPClient(client), channels };
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
    let payload: PaymentPayload | undefined;
    if (buyer) {
      const unpaid = await fetch(url, { method: "POST", headers, body });
      await unpaid.arrayBuffer();
      if (unpaid.status !== 402) return fail(timing, `expected 402, got ${unpaid.status}`);
      const required = decodePaymentRequiredHeader(unpaid.headers.get("payment-required") ?? "");
      timing.paymentRequiredMs = performance.now() - startedAt;
      const signingAt = performance.now();
      payload = await buyer.client.createPaymentPayload(required);
      if (payload.accepted.scheme !== buyer.scheme)
        return fail(timing, `paid by ${payload.accepted.scheme}, expected ${buyer.scheme}`);
      headers["payment-signature"] = encodePaymentSignatureHeader(payload);
      timing.signMs = performance.now() - signingAt;
      timing.deposit = isBatchSettlementDepositPayload(payload.payload);
    }
    let paidAt = performance.now();
    let response = await fetch(url, { method: "POST", headers, body });
    if (response.status === 402 && buyer && payload && buyer.scheme === "batch-settlement") {
      // The official client's recovery: the corrective 402 resyncs the channel, then it signs again.
      const { recovered } = await buyer.http.processPaymentResult(
        payload,
        (name) => response.headers.get(name),
        402,
      );
      await response.arrayBuffer();
      if (recovered) {
        timing.resynced = true;
        payload = await buyer.client.createPaymentPayload(
          decodePaymentRequiredHeader(response.headers.get("payment-required") ?? ""),
        );
        headers["payment-signature"] = encodePaymentSignatureHeader(payload);
        paidAt = performance.now();
        response = await fetch(url, { method: "POST", headers, body });
      }
    }
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
    if (!buyer || !payload) {
      timing.ok = true;
      return timing;
    }
    // Tollgate streams carry the receipt as the last event; everything else has PAYMENT-RESPONSE.
    const header = response.headers.get("payment-response");
    const settlement = read.receipt ?? (header ? decodePaymentResponseHeader(header) : undefined);
    if (!settlement) return fail(timing, "no settlement receipt");
    if (!settlement.success) return fail(timing, `settlement failed: ${settlement.errorReason ?? "?"}`);
    if (settlement.amount === undefined || BigInt(settlement.amount) > BigInt(payload.accepted.amount))
      return fail(timing, `charged ${settlement.amount} against a maximum of ${payload.accepted.amount}`);
    timing.settledAmount = settlement.amount;
    timing.transaction = settlement.transaction;
    if (buyer.scheme === "batch-settlement") {
      const synced = await keepChannelInStep(buyer, payload, settlement, read.receipt !== undefined);
      if (synced) return fail(timing, synced);
    }
    timing.ok = true;
    return timing;
  } catch (error) {
    return fail(timing, String(error));
  }
}

type Settlement = Pick<SettleResponse, "success" | "transaction" | "amount" | "errorReason"> & {
  extra?: Record<string, unknown>;
  channel?: Record<string, unknown>;
};

/**
 * Hands the seller's settlement to the official client's batch-settlement hook, which moves the
 * channel's cumulative base on by the charge: `PAYMENT-RESPONSE` for JSON; for a stream, the
 * receipt event's charge and channel state in the same shape. Answers what is wrong, if anything,
 * when the buyer's cumulative base then differs from the seller's.
 */
async function keepChannelInStep(
  buyer: BenchBuyer,
  payload: PaymentPayload,
  settlement: Settlement,
  fromStream: boolean,
): Promise<string | undefined> {
  const channelState = (fromStream ? settlement.channel : settlement.extra?.channelState) as
    | { channelId?: string; chargedCumulativeAmount?: string }
    | undefined;
  if (!channelState?.channelId) return "no channel state in the receipt";
  await buyer.client.handlePaymentResponse({
    paymentPayload: payload,
    requirements: payload.accepted,
    settleResponse: {
      success: true,
      transaction: settlement.transaction,
      network: payload.accepted.network,
      amount: settlement.amount,
      extra: fromStream
        ? { chargedAmount: settlement.amount, channelState: settlement.channel }
        : settlement.extra,
    } as SettleResponse,
  });
  const local = await buyer.channels?.get(channelState.channelId.toLowerCase());
  if (local?.chargedCumulativeAmount !== channelState.chargedCumulativeAmount)
    return `buyer's channel base ${local?.chargedCumulativeAmount} differs from the seller's ${channelState.chargedCumulativeAmount}`;
  return undefined;
}

function fail(timing: RequestTiming, error: string): RequestTiming {
  timing.ok = false;
  timing.error = error;
  return timing;
}

type ReadResult = {
  firstTokenAt: number;
  tokens: number;
  receipt?: Settlement;
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
