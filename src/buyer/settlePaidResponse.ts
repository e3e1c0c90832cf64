import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  PAYMENT_REQUIRED_HEADER,
  PAYMENT_RESPONSE_HEADER,
  parseReceiptEvent,
  type StreamReceipt,
} from "../protocol/index.js";
import type { PaidReceipt, PaymentAttempt, PaymentContext } from "./authorizePayment.js";
import type { ReportedUsage } from "./BuyerEvent.js";
import { bookedChargeOf, statedChargeOf } from "./bookedChargeOf.js";
import { checkSellerReceipts } from "./checkSellerReceipts.js";
import { buyerPromptCount } from "./inferenceRequest.js";
import { reportedUsageOf } from "./reportedUsage.js";
import { SELLER_REFUSED_NOTE } from "./resolveLapsedReservations.js";
import { tapResponseBody } from "./tapResponseBody.js";
import { verifyCharge } from "./verifyCharge.js";

/** A settlement as the buyer read it, from `PAYMENT-RESPONSE`, the stream's receipt event, or an MCP tool result. */
export type ReadReceipt = {
  source: "header" | "stream" | "mcp";
  success: boolean;
  errorReason: string | undefined;
  /** What is booked as charged (`bookedChargeOf`). */
  chargedAtomic: bigint;
  /** What the receipt states was charged, when it says. */
  statedAtomic: bigint | undefined;
  transaction: string;
  network: string;
  payer: string | undefined;
  usage: ReportedUsage | undefined;
  /**
   * The usage the answer itself reported (a stream's usage chunk) beside a receipt that states its
   * own: the seller's two words, and the charge is held to both.
   */
  answerUsage?: ReportedUsage | undefined;
  /** Who counted the prompt, when the receipt says: `gateway` means the backend reported none. */
  promptCountedBy?: "backend" | "gateway" | undefined;
  /** The settlement's `extensions`: where the seller's signed receipts travel. */
  extensions: unknown;
  extra: Record<string, unknown> | undefined;
};

/**
 * Books what a paid request came to and hands back the response with its body untouched:
 * - 402: the seller says it refused the authorization, yet holds it and can settle it until its
 *   deadline: the maximum stays reserved, as with no receipt (a refused channel voucher is
 *   released: the channel's later state says what was charged);
 * - a `PAYMENT-RESPONSE` header: reconciled to its charge now (`bookedChargeOf`), or, saying the
 *   settlement failed, left reserved at the maximum (the seller may still complete it before the
 *   deadline), an upto charge checked on chain at once; a JSON body's `usage` is checked against the
 *   charge once the body has been read, and a body that stops before its end has the charge checked
 *   without it;
 * - an event stream: tapped for the receipt event, reconciled and checked when it passes (a chat
 *   stream's charge against its own usage chunk too, when it sent one);
 * - no receipt at all (none sent, or the stream stopped before it): the maximum stays reserved
 *   until the authorization's deadline, or for a channel voucher until the channel's later state
 *   says what it was charged.
 * `track` registers background work so `idle()` can wait for it.
 */
export async function settlePaidResponse(
  context: PaymentContext,
  attempt: PaymentAttempt,
  response: Response,
  track: (work: Promise<unknown>) => void,
): Promise<Response> {
  const store = await context.store();
  const { paymentId, origin } = attempt;
  if (response.status === 402) {
    const reason = `${SELLER_REFUSED_NOTE} (HTTP 402${await refusalReason(response)})`;
    if (attempt.choice.offer.scheme === "batch-settlement") {
      await store.release(paymentId, reason);
      context.emit({ type: "released", paymentId, origin, reason });
    } else {
      await store.note(paymentId, `${reason}; it can still settle the authorization until its deadline`);
      context.emit({ type: "unreceipted", paymentId, origin, reason });
    }
    return response;
  }

  const usageOf = (json: unknown) =>
    reportedUsageOf({
      kind: attempt.request?.kind,
      json,
      promptTokenBound: attempt.choice.estimate?.promptTokenBound,
    });
  let booked = false;
  let reportedUsage: ReportedUsage | undefined;
  let receiptSeen = false;
  const seen = async (receipt: ReadReceipt | undefined) => {
    if (receiptSeen) return;
    receiptSeen = true;
    const paid: PaidReceipt | undefined = receipt && {
      success: receipt.success,
      chargedAtomic: receipt.chargedAtomic,
      transaction: receipt.transaction,
      extra: receipt.extra,
    };
    await attempt.onReceipt?.(paid);
  };
  const book = async (receipt: ReadReceipt, options?: RecordReceiptOptions) => {
    if (booked) return;
    booked = true;
    await seen(receipt);
    await recordReceipt(context, attempt, receipt, options);
  };

  const header = response.headers.get(PAYMENT_RESPONSE_HEADER);
  const headerReceipt = header ? decodePaymentResponseHeader(header) : undefined;
  const contentType = response.headers.get("content-type") ?? "";
  let headerBooked: ReadReceipt | undefined;
  if (headerReceipt?.ok) {
    const settled = headerReceipt.settleResponse;
    const statedAtomic = statedChargeOf(settled, attempt.choice.offer);
    headerBooked = {
      source: "header",
      success: settled.success,
      errorReason: settled.errorReason,
      chargedAtomic: settled.success ? bookedChargeOf(attempt.choice.offer, statedAtomic) : 0n,
      statedAtomic,
      transaction: settled.transaction,
      network: settled.network,
      payer: settled.payer,
      usage: undefined,
      extensions: settled.extensions,
      extra: settled.extra,
    };
  }

  const noReceipt = async (reason: string) => {
    await seen(undefined);
    await store.note(paymentId, reason);
    context.emit({ type: "unreceipted", paymentId, origin, reason });
  };

  if (!response.body) {
    if (headerBooked) await book(headerBooked);
    else await noReceipt(`no receipt (HTTP ${response.status}, empty body)`);
    return response;
  }

  if (contentType.includes("text/event-stream")) {
    let streamBooking: Promise<void> | undefined;
    const body = tapResponseBody(response.body, {
      mode: "sse",
      onSseData(data) {
        const parsed = parseReceiptEvent(data);
        if (parsed.ok && !streamBooking) {
          streamBooking = book({
            ...streamReceiptOf(parsed.receipt, attempt.choice.offer),
            // A chat stream's usage chunk is the seller's own word (Tollgate's gateway forwards none of
            // the backend's); a Messages stream's message_delta is the backend's count, which a gateway
            // may rightly not believe, so it does not bind the charge.
            answerUsage: attempt.request?.kind === "chat" ? reportedUsage : undefined,
          });
          track(streamBooking);
        } else reportedUsage ??= usageOf(safeJson(data));
      },
      async onEnd() {
        if (streamBooking) await streamBooking;
        else if (headerBooked) await book({ ...headerBooked, usage: reportedUsage });
        else if (!booked) await noReceipt("the stream ended without a receipt event");
      },
      async onAbort() {
        if (streamBooking) await streamBooking;
        else if (headerBooked) await book({ ...headerBooked, usage: reportedUsage });
        else if (!booked) await noReceipt("the stream stopped before its receipt event");
      },
    });
    return rewrap(response, body);
  }

  if (!headerBooked) {
    await noReceipt(`no receipt (HTTP ${response.status})`);
    return response;
  }
  if (!contentType.includes("json")) {
    await book(headerBooked);
    return response;
  }
  // Reconcile now, and check an upto charge on chain now (a body held open, or never read, does not
  // put that off); check the charge against the body's usage once the caller has read it. A failed
  // settlement is booked by `recordReceipt` alone: the maximum stays reserved.
  const receipt = headerBooked;
  await seen(receipt);
  const settledNow = receipt.success;
  if (settledNow) {
    await store.settle(paymentId, { chargedAtomic: receipt.chargedAtomic, transaction: receipt.transaction });
    if (attempt.choice.offer.scheme === "upto") context.checkSettlement?.(attempt, receipt);
  }
  const body = tapResponseBody(response.body, {
    mode: "json",
    onJson(text) {
      reportedUsage = usageOf(safeJson(text));
    },
    async onEnd() {
      await book({ ...receipt, usage: reportedUsage }, { settled: settledNow });
    },
    // A body cut short, or given up by the caller, has no usage to read; the charge is still
    // checked against the buyer's own bounds.
    async onAbort() {
      await book(receipt, { settled: settledNow });
    },
  });
  return rewrap(response, body);
}

export type RecordReceiptOptions = {
  /**
   * The reservation was reconciled to this receipt already, and its on-chain check started: neither is
   * done again (the check may have reopened or corrected the reservation meanwhile).
   */
  settled?: boolean | undefined;
};

/** Books a receipt: reconciles the reservation, reports it, and checks the charge against the usage. */
export async function recordReceipt(
  context: PaymentContext,
  attempt: PaymentAttempt,
  receipt: ReadReceipt,
  { settled = false }: RecordReceiptOptions = {},
) {
  const store = await context.store();
  const { paymentId, origin, url, maxAtomic, choice } = attempt;
  const signed = receipt.success
    ? await checkSellerReceipts(context, attempt, receipt)
    : { check: undefined, stored: undefined, signedUsage: undefined };
  // The seller's signed usage is its own word: a charge it does not justify is provable.
  const usage = signed.signedUsage ?? receipt.usage;
  if (receipt.success) {
    if (!settled)
      await store.settle(paymentId, {
        chargedAtomic: receipt.chargedAtomic,
        transaction: receipt.transaction,
      });
    if (signed.stored) await store.recordReceipts(paymentId, signed.stored);
    // An upto charge is whatever the seller settled, up to the maximum: the chain says what moved.
    if (choice.offer.scheme === "upto" && !settled) context.checkSettlement?.(attempt, receipt);
  } else {
    // A failed settlement may still be completed by the seller before the deadline.
    await store.note(paymentId, `settlement failed: ${receipt.errorReason ?? "unknown reason"}`);
  }
  context.emit({
    type: "receipt",
    paymentId,
    url,
    origin,
    source: receipt.source,
    success: receipt.success,
    errorReason: receipt.errorReason,
    maxAtomic,
    chargedAtomic: receipt.chargedAtomic,
    savedAtomic: maxAtomic > receipt.chargedAtomic ? maxAtomic - receipt.chargedAtomic : 0n,
    transaction: receipt.transaction,
    depositAtomic: attempt.depositAtomic,
    network: receipt.network,
    payer: receipt.payer,
    usage,
    signedReceipts: {
      status: signed.check?.status ?? "absent",
      signer: signed.check?.signer,
      problems: signed.check?.problems ?? [],
    },
  });
  if (!receipt.success) return;
  // A prompt the seller says it counted itself is held to the buyer's own count of it.
  const promptCountLimit =
    receipt.promptCountedBy === "gateway" && attempt.request && choice.estimate
      ? await buyerPromptCount(attempt.request)
      : undefined;
  const verdictOn = (checked: ReportedUsage | undefined) =>
    verifyCharge({
      chargedAtomic: receipt.chargedAtomic,
      statedAtomic: receipt.statedAtomic,
      maxAtomic,
      usage: checked,
      price: choice.price,
      estimate: choice.estimate,
      promptCountLimit,
    });
  let verdict = verdictOn(usage);
  // A charge the receipt's usage justifies and the answer's own usage does not is flagged all the same.
  if (verdict.ok && receipt.answerUsage) {
    const answered = verdictOn(receipt.answerUsage);
    if (!answered.ok)
      verdict = {
        ...answered,
        message: `${answered.message} (the answer's own usage: ${receipt.answerUsage.promptTokens} prompt and ${receipt.answerUsage.completionTokens} output tokens; its receipt's: ${usage?.promptTokens ?? "none"} and ${usage?.completionTokens ?? "none"})`,
      };
  }
  if (verdict.ok) return;
  const disputeId = await store.recordDispute({
    reservationId: paymentId,
    origin,
    reason: verdict.reason,
    chargedAtomic: receipt.chargedAtomic,
    justifiedAtomic: verdict.justifiedAtomic,
    maxAtomic,
    transaction: receipt.transaction,
    network: receipt.network,
    details: {
      message: verdict.message,
      usage,
      url,
      source: receipt.source,
      ...(receipt.statedAtomic !== undefined ? { statedAtomic: receipt.statedAtomic } : {}),
      ...(receipt.answerUsage ? { answerUsage: receipt.answerUsage } : {}),
      // The seller's signed statement of what it charged and why: evidence anyone can verify.
      ...(signed.stored ? { sellerStatement: signed.stored } : {}),
    },
  });
  context.emit({
    type: "overcharge",
    paymentId,
    origin,
    reason: verdict.reason,
    chargedAtomic: receipt.chargedAtomic,
    justifiedAtomic: verdict.justifiedAtomic,
    maxAtomic,
    transaction: receipt.transaction,
    network: receipt.network,
    usage,
    disputeId,
  });
}

function streamReceiptOf(receipt: StreamReceipt, offer: { scheme: string; amount: string }): ReadReceipt {
  // A channel's receipt event carries the channel's state after the charge (`channel`).
  const { extra, channel } = receipt as { extra?: unknown; channel?: unknown };
  const channelState = typeof channel === "object" && channel !== null ? channel : undefined;
  return {
    source: "stream",
    success: receipt.success,
    errorReason: receipt.errorReason,
    chargedAtomic: receipt.success ? bookedChargeOf(offer, BigInt(receipt.amount)) : 0n,
    statedAtomic: BigInt(receipt.amount),
    transaction: receipt.transaction,
    network: receipt.network,
    payer: receipt.payer,
    usage: {
      promptTokens: receipt.usage.prompt_tokens,
      completionTokens: receipt.usage.completion_tokens,
      ...(receipt.units ? { units: receipt.units } : {}),
    },
    promptCountedBy: receipt.promptCountedBy,
    extensions: receipt.extensions,
    extra:
      typeof extra === "object" && extra !== null
        ? (extra as Record<string, unknown>)
        : channelState && { chargedAmount: receipt.amount, channelState },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function refusalReason(response: Response): Promise<string> {
  const required = decodePaymentRequiredHeader(response.headers.get(PAYMENT_REQUIRED_HEADER));
  if (required.ok && required.paymentRequired.error) return `: ${required.paymentRequired.error}`;
  try {
    const body = (await response.clone().json()) as { error?: unknown };
    const error = typeof body.error === "string" ? body.error : (body.error as { code?: unknown })?.code;
    return typeof error === "string" ? `: ${error}` : "";
  } catch {
    return "";
  }
}

function rewrap(response: Response, body: ReadableStream<Uint8Array>): Response {
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
