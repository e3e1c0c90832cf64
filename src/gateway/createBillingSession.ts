import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import type { Logger } from "../errors/index.js";
import type { FaultInjection } from "../facilitator/index.js";
import type { PaymentLedger } from "../ledger/index.js";
import { chargeAtomic } from "../pricing/index.js";
import {
  encodePaymentResponseHeader,
  formatReceiptEvent,
  PAYMENT_RESPONSE_HEADER,
  SSE_DONE_EVENT,
  type StreamReceipt,
} from "../protocol/index.js";
import { createSseTap, type SseTap } from "./createSseTap.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import { usageOfJsonResponse } from "./meterUsage.js";
import type { RequestQuote } from "./quoteRequest.js";
import { type ChargeOutcome, type ChargeUsage, settleCharge } from "./settleCharge.js";
import { StreamMeter } from "./upstream/index.js";

export type CreateBillingSessionParameters = {
  quote: RequestQuote;
  paymentId: number;
  payer: string;
  payload: PaymentPayload;
  requirements: PaymentRequirements;
  signedMaxAtomic: bigint;
  ledger: PaymentLedger;
  facilitator: FacilitatorLike;
  countTokens: (text: string) => number;
  logger: Logger;
  /** Bound on the wait for the facilitator's settle; see `settleRecordedCharge`. */
  settleTimeoutMs?: number;
  /** How often a request being served tells the ledger it is alive (ms); default 10 s. */
  heartbeatMs?: number;
  /** Test-only: `mid_stream`, `after_metering`, `after_settlement`. */
  faultInjection?: FaultInjection;
};

/** Default interval of the serving heartbeat; a recovery grace period must be several times longer. */
export const DEFAULT_HEARTBEAT_MS = 10_000;

/** How a stream ended, as far as billing is concerned. */
export type StreamEnding = "complete" | "backend_error" | "client_gone";

/** One paid request being served: meters what the backend produces and settles its cost once. */
export type BillingSession = {
  readonly paymentId: number;
  readonly payer: string;
  /** The backend failed before producing anything: nothing is charged. */
  failBeforeOutput(reason: string): Promise<void>;
  /** A non-streaming response: meter it, settle, and return the headers to add. */
  completeJson(body: unknown): Promise<{ headers: Record<string, string>; outcome: ChargeOutcome }>;
  /** A streaming response: forward the backend's SSE as it comes; settle and send the receipt at the end. */
  meterStream(upstream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array>;
  /** The same metering for frameworks that write the stream themselves (Express). */
  createSseTap(): SseTap;
  /** Resolves once the money of this request is final (settled, zero, debt or failed). */
  readonly done: Promise<ChargeOutcome | undefined>;
};

/** Creates the session for one claimed, verified payment. */
export function createBillingSession(parameters: CreateBillingSessionParameters): BillingSession {
  const {
    quote,
    paymentId,
    payer,
    payload,
    requirements,
    signedMaxAtomic,
    ledger,
    facilitator,
    countTokens,
    logger,
    settleTimeoutMs,
    heartbeatMs = DEFAULT_HEARTBEAT_MS,
    faultInjection,
  } = parameters;
  const model = quote.model;
  let finishing: Promise<ChargeOutcome | undefined> | undefined;
  let resolveDone: (outcome: ChargeOutcome | undefined) => void = () => {};
  const done = new Promise<ChargeOutcome | undefined>((resolve) => {
    resolveDone = resolve;
  });

  const chargeFor = (usage: ChargeUsage): bigint => {
    if (requirements.scheme !== "upto") return BigInt(requirements.amount);
    return chargeAtomic(
      { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens },
      {
        inputPerMTokAtomic: model.inputPrice ?? 0n,
        outputPerMTokAtomic: model.outputPrice ?? 0n,
        fixedFeeAtomic: model.fixedFee,
        maxOutputTokens: model.maxOutputTokens,
      },
      signedMaxAtomic,
    );
  };

  // While the request is served, the row stays fresh, so a sibling replica's recovery never takes it for dead.
  // Bounded: a session that somehow never finishes stops vouching for its row after an hour.
  let beats = 0;
  const heartbeat = setInterval(() => {
    if (++beats * heartbeatMs > 3_600_000) clearInterval(heartbeat);
    ledger.touch(paymentId).then(
      (alive) => {
        if (!alive) clearInterval(heartbeat);
      },
      (error: unknown) => logger.warn({ paymentId, error: String(error) }, "ledger heartbeat failed"),
    );
  }, heartbeatMs);
  heartbeat.unref();

  /** Runs once, whoever asks first: the money of a request is decided a single time. */
  const finishOnce = (work: () => Promise<ChargeOutcome | undefined>) => {
    if (!finishing) {
      clearInterval(heartbeat);
      finishing = work().then(
        (outcome) => {
          resolveDone(outcome);
          return outcome;
        },
        (error) => {
          logger.error({ paymentId, error: String(error) }, "billing failed to finish");
          resolveDone(undefined);
          throw error;
        },
      );
    }
    return finishing;
  };

  const settleUsage = (usage: ChargeUsage) =>
    finishOnce(() =>
      settleCharge({
        ledger,
        facilitator,
        logger,
        paymentId,
        payload,
        requirements,
        usage,
        chargeAtomic: chargeFor(usage),
        settleTimeoutMs,
        faultInjection,
      }),
    );

  const failBeforeOutput = async (reason: string) => {
    await finishOnce(async () => {
      await ledger.markFailed(paymentId, reason);
      return undefined;
    });
  };

  const receiptFor = (outcome: ChargeOutcome): StreamReceipt => ({
    success: outcome.settlement.success,
    ...(outcome.settlement.errorReason ? { errorReason: outcome.settlement.errorReason } : {}),
    amount: outcome.chargeAtomic.toString(),
    maxAmount: signedMaxAtomic.toString(),
    transaction: outcome.settlement.transaction,
    network: requirements.network,
    payer,
    asset: requirements.asset,
    model: model.id,
    usage: {
      prompt_tokens: outcome.usage.promptTokens,
      completion_tokens: outcome.usage.completionTokens,
      total_tokens: outcome.usage.promptTokens + outcome.usage.completionTokens,
    },
    prices: {
      inputPerMTokAtomic: String(model.inputPrice ?? 0n),
      outputPerMTokAtomic: String(model.outputPrice ?? 0n),
      fixedFeeAtomic: String(model.fixedFee),
    },
  });

  const newSseTap = (): SseTap => {
    const meter = new StreamMeter({ countTokens });
    let streamId: string | undefined;
    return createSseTap({
      onChunk(json) {
        if (streamId === undefined && typeof (json as { id?: unknown }).id === "string")
          streamId = (json as { id: string }).id;
        meter.add(json as Parameters<StreamMeter["add"]>[0]);
      },
      async finish(ending) {
        if (ending !== "complete" && meter.chunkCount === 0) {
          await failBeforeOutput(
            ending === "client_gone"
              ? "client disconnected before any output"
              : "backend failed before any output",
          );
          return SSE_DONE_EVENT;
        }
        const metered = meter.usage({ promptTokens: quote.promptTokenBound });
        const outcome = await settleUsage({
          promptTokens: metered.prompt_tokens,
          completionTokens: metered.completion_tokens,
          source: metered.source,
        });
        if (!outcome) return SSE_DONE_EVENT;
        const object = quote.routeKind === "completion" ? "text_completion" : "chat.completion.chunk";
        return formatReceiptEvent(receiptFor(outcome), { id: streamId, object }) + SSE_DONE_EVENT;
      },
    });
  };

  return {
    paymentId,
    payer,
    done,
    failBeforeOutput,
    async completeJson(body) {
      const usage = usageOfJsonResponse(body, quote.promptTokenBound, countTokens);
      const outcome = await settleUsage(usage);
      if (!outcome) throw new Error("payment was already finished");
      return {
        headers: { [PAYMENT_RESPONSE_HEADER]: encodePaymentResponseHeader({ ...outcome.settlement, payer }) },
        outcome,
      };
    },
    createSseTap: newSseTap,
    meterStream(upstream) {
      const tap = newSseTap();
      const reader = upstream.getReader();
      const decoder = new TextDecoder();
      const encoder = new TextEncoder();
      let closed = false;
      let forwardedEvents = 0;
      return new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            // Read until there is something to forward, so each pull delivers as soon as the backend does.
            for (;;) {
              let next: ReadableStreamReadResult<Uint8Array>;
              try {
                next = await reader.read();
              } catch (error) {
                logger.warn({ paymentId, error: String(error) }, "backend stream failed");
                const trailer = await tap.finish("backend_error");
                if (!closed) {
                  closed = true;
                  controller.enqueue(encoder.encode(trailer));
                  controller.close();
                }
                return;
              }
              if (next.done) {
                const rest = tap.push(decoder.decode());
                const trailer = await tap.finish("complete");
                if (!closed) {
                  closed = true;
                  controller.enqueue(encoder.encode(rest + trailer));
                  controller.close();
                }
                return;
              }
              const out = tap.push(decoder.decode(next.value, { stream: true }));
              if (out) {
                controller.enqueue(encoder.encode(out));
                // Test-only crash point, once three events went out (however the backend's bytes were cut
                // into reads): a crash here leaves a `serving` row.
                if (faultInjection && forwardedEvents < 3) {
                  forwardedEvents += out.split("data: ").length - 1;
                  if (forwardedEvents >= 3) faultInjection("mid_stream");
                }
                return;
              }
            }
          },
          async cancel(reason) {
            closed = true;
            await reader.cancel(reason).catch(() => undefined);
            // The buyer left: the backend is stopped above; charge for what it generated.
            void tap.finish("client_gone").catch(() => undefined);
          },
        },
        { highWaterMark: 0 },
      );
    },
  };
}
