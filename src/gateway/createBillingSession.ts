import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { type Logger, runWithRequestId, TollgateError } from "../errors/index.js";
import type { ClaimPaymentInput, PaymentLedger } from "../ledger/index.js";
import {
  costOfUnits,
  countPromptTokens,
  promptCountPlausible,
  unitPricesToStrings,
} from "../pricing/index.js";
import {
  encodePaymentResponseHeader,
  formatReceiptEvent,
  PAYMENT_RESPONSE_HEADER,
  SSE_DONE_EVENT,
  type StreamReceipt,
} from "../protocol/index.js";
import type { BillingEvent } from "./BillingEvent.js";
import type { ChannelReservation } from "./channels/createChannelBilling.js";
import { createSseTap, type SseTap } from "./createSseTap.js";
import { errorAnswer } from "./errorAnswer.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import { guardBackendBody } from "./guardBackendBody.js";
import { reconcileUsage } from "./meterUsage.js";
import { OutputMeter } from "./OutputMeter.js";
import { hasExactTokenizer, type RequestQuote } from "./quoteRequest.js";
import { releaseDroppedPayment } from "./releaseDroppedPayment.js";
import { type ChargeOutcome, type ChargeUsage, settleCharge } from "./settleCharge.js";
import { type SessionReceipts, signSettledCharge } from "./signSettledCharge.js";
import { truncateAnswer } from "./truncateAnswer.js";

export type CreateBillingSessionParameters = {
  quote: RequestQuote;
  paymentId: number;
  /**
   * A voucher request's row, when it is not in the ledger yet (default: it is). `written` is its
   * write already under way (a stream's runs while the backend starts); without it, a JSON answer's
   * row is inserted whole with the charge, in one statement, and anything else starts the write when
   * it first needs the row. No output is forwarded and nothing is charged before the row is in; when
   * it cannot be written, the request fails unserved and uncharged.
   */
  unwritten?: { claim: ClaimPaymentInput; write: () => Promise<void>; written?: Promise<void> | undefined };
  /**
   * A check of the payment left until the backend request was on its way (a voucher's signature):
   * nothing is forwarded, written or charged before it resolved true; false fails the request unserved.
   */
  confirmed?: Promise<boolean>;
  payer: string;
  payload: PaymentPayload;
  requirements: PaymentRequirements;
  signedMaxAtomic: bigint;
  ledger: PaymentLedger;
  facilitator: FacilitatorLike;
  /** Tokens of generated text (the model's tokenizer, or an estimate). */
  countTokens: (text: string) => number;
  logger: Logger;
  /** Bound on the wait for the facilitator's settle; see `settleRecordedCharge`. */
  settleTimeoutMs?: number;
  /** How often a request being served tells the ledger it is alive (ms); default 10 s. */
  heartbeatMs?: number;
  /** Signs the receipts of a successful settlement; without it the answer carries none. */
  receipts?: SessionReceipts | undefined;
  /** Who this request is, for the events it emits. */
  event: PaidRequestIdentity;
  /** `Date.now()` when the request arrived (time to first output counts from it). */
  startedAt: number;
  /** Where the session's events go (`served`, `metered`, `settled`, `debt`, `failed`). */
  emit: (event: BillingEvent) => void;
  /** A voucher's reservation on its payment channel: the charge goes there instead of a settle. */
  channel?: ChannelReservation;
  /** Aborted when the gateway stops: a stream whose buyer left is then not read on for its usage. */
  stopping?: AbortSignal;
};

/** The fields every event of a paid request carries. */
export type PaidRequestIdentity = {
  requestId: string;
  route: string;
  paymentId: number;
  model: string;
  scheme: string;
  asset: string;
  payer: string;
};

/** Why a request whose ledger row could not be written was not served. */
export const PAYMENT_NOT_RECORDED = "the payment could not be recorded; nothing was served or charged";

/** A row write that failed, already handled: `ready()` reads it as false. */
function rowWriteFailed(): Promise<void> {
  const failed = Promise.reject(new Error(PAYMENT_NOT_RECORDED));
  failed.catch(() => undefined);
  return failed;
}

/** Default interval of the serving heartbeat; a recovery grace period must be several times longer. */
export const DEFAULT_HEARTBEAT_MS = 10_000;

/** What the buyer was delivered of a stream, as the charge reads it (an `OutputMeter`, or what it held when the buyer left). */
type DeliveredOutput = Pick<
  OutputMeter,
  "countedTokens" | "reasoningTokens" | "byteCeiling" | "sawHiddenOutput" | "images"
>;

/** How a stream ended, as far as billing is concerned. */
export type StreamEnding = "complete" | "backend_error" | "timeout" | "client_gone";

/** The answer to a non-streaming response: forward it (charged), or tell the buyer the backend failed (not charged). */
export type JsonCompletion =
  | { ok: true; body: string; headers: Record<string, string>; outcome: ChargeOutcome }
  | { ok: false; status: number; body: Record<string, unknown> };

/** The answer of a route that answers bytes (`RouteAdapter.readBytes`): forward them (charged), or tell the buyer the backend failed (not charged). */
export type BytesCompletion =
  | { ok: true; body: Uint8Array<ArrayBuffer>; headers: Record<string, string>; outcome: ChargeOutcome }
  | { ok: false; status: number; body: Record<string, unknown> };

/** One paid request being served: meters what is delivered, enforces the quote, and settles once. */
export type BillingSession = {
  readonly paymentId: number;
  readonly payer: string;
  /** `Date.now()` past which the backend is cut off: the request's time bound. */
  readonly deadlineAt: number;
  /**
   * True once the request's row is in the ledger; false when it could not be written (the request
   * must then fail unserved: `failBeforeOutput`). `completeJson` and `meterStream` wait for it
   * themselves; a caller of `createStreamWriter` waits for it before it writes anything.
   */
  readonly ready: Promise<boolean>;
  /**
   * The backend failed before producing anything: nothing is charged. `status` is the HTTP status the
   * buyer gets (default 502), for the `failed` event.
   */
  failBeforeOutput(reason: string, status?: number): Promise<void>;
  /**
   * The buyer left once the backend had the prompt and before any output reached it (a JSON answer
   * it did not wait for): the prompt is charged, as for a stream it leaves before its first token.
   */
  leftAfterPrompt(): Promise<void>;
  /** A non-streaming response body (text): meter it, cut it to the authorized output, settle. */
  completeJson(text: string): Promise<JsonCompletion>;
  /**
   * A whole answer of bytes (speech's audio) with the backend's content type, for a route that reads
   * them (`readBytes`): charged and forwarded as they came when they delivered, else neither.
   */
  completeBytes(bytes: Uint8Array<ArrayBuffer>, contentType: string): Promise<BytesCompletion>;
  /** A streaming response: forward the backend's SSE as it comes; settle and send the receipt at the end. */
  meterStream(upstream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array>;
  /** The same metering for frameworks that write the stream themselves (Express). */
  createStreamWriter(): StreamWriter;
  /** Resolves once the money of this request is final (settled, zero, debt or failed). */
  readonly done: Promise<ChargeOutcome | undefined>;
};

/** Push-style stream metering: feed backend text, forward what it returns, then `finish`. */
export type StreamWriter = {
  push(text: string): string;
  /** True once the tap stopped forwarding (limit or backend error): stop the backend. */
  readonly stopped: boolean;
  /**
   * The buyer left. True when the backend is to be read on, nothing forwarded, until its usage report
   * (`usageReported`), then `finish("client_gone")`: the answer had begun on a request that allows
   * hidden output, whose reasoning before the answer is spent and is reported only at the end. False:
   * stop the backend now and `finish("client_gone")` (what was delivered is charged); always false once
   * the gateway is stopping.
   */
  leave(): boolean;
  /**
   * Aborted when the gateway stops (`Billing.stopReadingOn`): a backend read on after `leave()` is
   * stopped then and the stream finished `client_gone`, charged what it delivered.
   */
  readonly stopping: AbortSignal | undefined;
  /** The backend reported its output count. */
  readonly usageReported: boolean;
  finish(ending: StreamEnding): Promise<string>;
};

/** Creates the session for one claimed, verified payment. */
export function createBillingSession(parameters: CreateBillingSessionParameters): BillingSession {
  const { quote, paymentId, payer, payload, requirements, signedMaxAtomic, ledger, logger } = parameters;
  const { heartbeatMs = DEFAULT_HEARTBEAT_MS, event: identity, emit } = parameters;
  let servedOnce = false;
  /** The first output left for the buyer: told once, with the time since the request arrived. */
  const served = (stream: boolean) => {
    if (servedOnce) return;
    servedOnce = true;
    const at = Date.now();
    emit({ ...identity, type: "served", at, stream, ttftMs: at - parameters.startedAt });
  };
  const model = quote.model;
  const { unwritten, confirmed } = parameters;
  let written = unwritten ? unwritten.written : Promise.resolve();
  let rowIn = unwritten === undefined && confirmed === undefined;
  let readiness: Promise<boolean> | undefined;
  /** Whether the row is in the ledger; starts its write when it was waiting for the charge. */
  const ready = () => {
    readiness ??= (async () => {
      if (confirmed && !(await confirmed)) return false;
      if (!written && unwritten) written = unwritten.write();
      await written;
      return true;
    })().then(
      (passed) => {
        if (!passed) return false;
        rowIn = true;
        startHeartbeat();
        return true;
      },
      (error: unknown) => {
        logger.error(
          { paymentId, error: String(error) },
          "the payment's row could not be written; not served",
        );
        return false;
      },
    );
    return readiness;
  };
  if (written) void ready();
  /** Set when a row written with its charge could not be: the answer was not forwarded. */
  let unrecorded = false;
  const deadlineAt = Date.now() + quote.timeBoundMs;
  // Compute time is measured from here (the backend is called next) to the end of the answer.
  const startedAt = performance.now();
  const capAtomic =
    requirements.scheme === "upto" && quote.maxAtomic !== undefined && quote.maxAtomic < signedMaxAtomic
      ? quote.maxAtomic
      : signedMaxAtomic;
  let finishing: Promise<ChargeOutcome | undefined> | undefined;
  let resolveDone: (outcome: ChargeOutcome | undefined) => void = () => {};
  const done = new Promise<ChargeOutcome | undefined>((resolve) => {
    resolveDone = resolve;
  });

  // The charge is capped by this request's own maximum, not by a larger amount the buyer signed.
  const chargeFor = (usage: ChargeUsage): bigint => {
    if (requirements.scheme !== "upto" && !parameters.channel) return BigInt(requirements.amount);
    const cost = costOfUnits(usage.units, quote.prices ?? {});
    if (cost > capAtomic) return capAtomic;
    return cost;
  };

  // While the request is served, the row stays fresh, so a sibling replica's recovery never takes it for dead.
  let beats = 0;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const startHeartbeat = () => {
    if (finishing || heartbeat) return;
    const beating = setInterval(() => {
      if (++beats * heartbeatMs > 3_600_000) clearInterval(beating);
      ledger.touch(paymentId).then(
        (alive) => {
          if (!alive) clearInterval(beating);
        },
        (error: unknown) => logger.warn({ paymentId, error: String(error) }, "ledger heartbeat failed"),
      );
    }, heartbeatMs);
    beating.unref();
    heartbeat = beating;
  };

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

  /**
   * The buyer got an answer: output the model generated (`OutputMeter.generated`), a result of an API
   * that generates no tokens (embeddings, moderations), or an empty one the backend says it worked for
   * (a usage report counting the prompt it read or tokens it generated: a stop sequence met at once, a
   * content filter, reasoning that used up the limit), charged as any answer by that usage. A buyer
   * could otherwise have any prompt read, and a prompt cache written, for free by asking for nothing.
   * Anything less (no usage report, a stream cut before it) is charged nothing.
   */
  const answered = (meter: OutputMeter, reported: unknown) =>
    meter.generated || (!quote.route.outputTokens && meter.delivered) || reportsWork(reported);

  /**
   * Output the backend may have generated unseen before its answer, as far as a buyer that left is read
   * on for it: thinking the request allows (or showed, when it said nothing), or reasoning an API
   * itemizes in its usage for a model that reasons unseen (`hiddenReasoning`), up to the output limit.
   * Any other model's backend is stopped when its buyer leaves: reading on would have it generate the
   * rest of the answer for no one, at the seller's cost.
   */
  const reasonsUnseen =
    quote.route.reportsReasoning === true &&
    (quote.model.hiddenReasoning ?? quote.model.prices?.reasoning_tokens !== undefined);
  const hiddenAllowance = (sawHiddenOutput: boolean) =>
    quote.request.hiddenOutputTokens ?? (sawHiddenOutput || reasonsUnseen ? quote.maxOutputTokens : 0);

  const exactCount = hasExactTokenizer(model);
  const newMeter = () =>
    new OutputMeter({
      countTokens: parameters.countTokens,
      limitPerChoice: quote.outputLimit,
      choices: quote.choices,
      exactCount,
      imageLimit: Number(quote.usageBound.images ?? 0),
    });

  /**
   * Settles what was delivered; `endedAt` is when the backend's answer ended (its last byte, or the
   * buyer leaving), so backend time is priced without the gateway's own metering and waits after it.
   */
  const settleDelivered = (
    meter: DeliveredOutput,
    reported: unknown,
    endedAt: number,
    undeliveredOutputTokens = 0,
  ) =>
    finishOnce(async () => {
      // A row waiting for its charge is written with it; any other is in the ledger first.
      const writtenWithCharge = written === undefined && parameters.channel !== undefined;
      if (confirmed && !(await confirmed)) return failWithoutRow(402);
      if (!writtenWithCharge && !(await ready())) return failWithoutRow(500);
      const counted = await reconcileUsage({
        reported,
        deliveredOutputTokens: meter.countedTokens,
        deliveredReasoningTokens: meter.reasoningTokens,
        deliveredOutputBytes: exactCount ? undefined : meter.byteCeiling,
        choices: quote.choices,
        maxOutputTokens: quote.maxOutputTokens,
        promptTokenBound: quote.promptTokenBound,
        countPrompt: () => {
          const { kind, body, model, ...options } = quote.prompt;
          return countPromptTokens(kind, body, model, options);
        },
        promptCountPlausible: async (reported) =>
          quote.request.promptMayShrink === true ||
          promptCountPlausible(quote.prompt, reported, quote.route.plainTexts?.(quote.request)),
        // Writes priced as input are stated as input, so buyers that predate the unit read the same charge.
        promptCache:
          quote.request.promptCache === true &&
          quote.prices?.cache_write_input_tokens !== quote.prices?.input_tokens,
        // Thinking the request asked for, up to its budget; thinking it said nothing of, up to the limit.
        hiddenOutputTokens:
          quote.request.hiddenOutputTokens ?? (meter.sawHiddenOutput ? quote.maxOutputTokens : 0),
        undeliveredOutputTokens,
      });
      // Images are counted as the buyer gets them (the meter forwards none past what the quote allowed).
      const images = meter.images;
      const computeMs =
        quote.prices?.compute_ms === undefined
          ? undefined
          : Math.min(Math.ceil(endedAt - startedAt), quote.timeBoundMs);
      // Characters of input are known exactly from the request: whatever was delivered, the backend read them all.
      const inputCharacters = quote.request.inputCharacters;
      // Seconds of audio are read from the file before it runs: the backend's own count is never charged.
      const inputAudioSeconds = quote.request.inputAudioSeconds;
      const usage = {
        ...counted,
        units: {
          ...counted.units,
          ...(images > 0 ? { images } : {}),
          ...(inputCharacters !== undefined ? { input_characters: inputCharacters } : {}),
          ...(inputAudioSeconds !== undefined ? { input_audio_seconds: inputAudioSeconds } : {}),
          ...(computeMs !== undefined ? { compute_ms: computeMs } : {}),
        },
      };
      // Charged (channel) or settled (facilitator); then, when it succeeded, signed for the buyer.
      const chargeOrSettle = async (): Promise<ChargeOutcome | undefined> => {
        const charge = chargeFor(usage);
        const metered = () =>
          emit({
            ...identity,
            type: "metered",
            at: Date.now(),
            usage: usage.units,
            chargeAtomic: charge,
          });
        if (parameters.channel) {
          // A row written with its charge tells nothing before both are in: the answer waits for them.
          if (!writtenWithCharge) metered();
          const chargedAt = performance.now();
          let outcome: ChargeOutcome;
          try {
            outcome = await parameters.channel.charge(
              paymentId,
              usage,
              charge,
              writtenWithCharge ? unwritten?.claim : undefined,
            );
          } catch (error) {
            if (!writtenWithCharge) throw error;
            // Neither the row nor the charge is in, and the channel was freed: the answer is not forwarded.
            logger.error(
              { paymentId, error: String(error) },
              "the payment's row could not be written; not served",
            );
            unrecorded = true;
            written = rowWriteFailed();
            return undefined;
          }
          if (writtenWithCharge) {
            written = Promise.resolve();
            served(false);
            metered();
          }
          const settleMs = performance.now() - chargedAt;
          if (outcome.settlement.success)
            emit({
              ...identity,
              type: "settled",
              at: Date.now(),
              chargeAtomic: charge,
              transaction: "",
              settleMs,
            });
          else
            emit({
              ...identity,
              type: "debt",
              at: Date.now(),
              chargeAtomic: charge,
              reason: outcome.settlement.errorReason ?? "channel_charge_failed",
              settleMs,
            });
          return outcome;
        }
        let settleStartedAt = 0;
        // Facilitator calls carry this request's id, however the stream that finishes it was scheduled.
        return runWithRequestId(identity.requestId, () =>
          settleCharge({
            ledger,
            facilitator: parameters.facilitator,
            logger,
            paymentId,
            payload,
            requirements,
            usage,
            chargeAtomic: charge,
            settleTimeoutMs: parameters.settleTimeoutMs,
            onMetered: () => {
              settleStartedAt = performance.now();
              metered();
            },
            onOutcome: (outcome) => {
              const settleMs = performance.now() - settleStartedAt;
              if (outcome.kind === "settled")
                emit({
                  ...identity,
                  type: "settled",
                  at: Date.now(),
                  chargeAtomic: charge,
                  transaction: outcome.settlement.transaction,
                  settleMs,
                });
              else
                emit({
                  ...identity,
                  type: "debt",
                  at: Date.now(),
                  chargeAtomic: charge,
                  reason: outcome.reason,
                  settleMs,
                });
            },
          }),
        );
      };
      const outcome = await chargeOrSettle();
      if (!outcome) {
        emit({ ...identity, type: "failed", at: Date.now(), reason: PAYMENT_NOT_RECORDED, status: 503 });
        return undefined;
      }
      const { receipts } = parameters;
      return receipts
        ? signSettledCharge({
            outcome,
            receipts,
            model,
            requirements,
            payer,
            prices: quote.prices,
            capAtomic,
            logger,
          })
        : outcome;
    });

  /** The request's row never got into the ledger: free the channel and tell; nothing to mark. */
  async function failWithoutRow(status: number): Promise<undefined> {
    await parameters.channel?.release();
    emit({ ...identity, type: "failed", at: Date.now(), reason: PAYMENT_NOT_RECORDED, status });
    return undefined;
  }

  const failBeforeOutput = async (reason: string, status = 502) => {
    await finishOnce(async () => {
      if (!(await ready())) return failWithoutRow(status);
      await ledger.markFailed(paymentId, reason);
      await parameters.channel?.release();
      // Never to be settled: the facilitator gives back the permit nonce it holds for it, so that the
      // payer's next payment on that nonce is not refused until the permit's deadline.
      if (!parameters.channel)
        await releaseDroppedPayment({ facilitator: parameters.facilitator, payload, requirements, logger });
      emit({ ...identity, type: "failed", at: Date.now(), reason, status });
      return undefined;
    });
  };

  const receiptFor = (outcome: ChargeOutcome): StreamReceipt => ({
    success: outcome.settlement.success,
    ...(outcome.settlement.errorReason ? { errorReason: outcome.settlement.errorReason } : {}),
    amount: outcome.chargeAtomic.toString(),
    maxAmount: capAtomic.toString(),
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
    ...(outcome.usage.promptSource ? { promptCountedBy: outcome.usage.promptSource } : {}),
    units: outcome.usage.units,
    prices: {
      inputPerMTokAtomic: String(quote.prices?.input_tokens ?? 0n),
      outputPerMTokAtomic: String(quote.prices?.output_tokens ?? 0n),
      fixedFeeAtomic: String(quote.prices?.requests ?? 0n),
      units: unitPricesToStrings(quote.prices ?? {}),
    },
    ...(outcome.settlement.extensions ? { extensions: outcome.settlement.extensions } : {}),
    // A channel's charged total and balance after this charge, as `@x402/evm`'s client reads them.
    ...(outcome.settlement.extra?.channelState ? { channel: outcome.settlement.extra.channelState } : {}),
  });

  const streamTrailer = quote.route.streamTrailer;
  const doneEvent = streamTrailer ? streamTrailer.done : SSE_DONE_EVENT;
  const errorEvent = (message: string, code: string) =>
    streamTrailer
      ? streamTrailer.error(message, code)
      : `data: ${JSON.stringify({ error: { message, type: "backend_error", code } })}\n\n`;

  const createStreamWriter = (onStop: () => void = () => {}): StreamWriter => {
    const meter = newMeter();
    const tap: SseTap = createSseTap({ route: quote.route, meter, onStop });
    let trailer: Promise<string> | undefined;
    /** What the buyer had when it left while the backend was read on for its usage report. */
    let left: (DeliveredOutput & { at: number }) | undefined;
    /** When the backend's last bytes came: a backend that failed or stalled worked until then, not after. */
    let lastBytesAt: number | undefined;
    const finish = async (ending: StreamEnding): Promise<string> => {
      // A backend that ended without closing its last event (no blank line after it): that event counts too.
      const tail = ending === "complete" ? tap.end() : "";
      if (tail && meter.delivered) served(true);
      return tail + (await trailerFor(ending));
    };
    const trailerFor = async (ending: StreamEnding): Promise<string> => {
      const failed = tap.stopped === "backend_error" || ending === "backend_error" || ending === "timeout";
      // Backend time (compute-priced models) ends with the answer: its last bytes when it failed or went
      // silent until a timeout (the wait is not its work), else now (its end, or the buyer leaving). A
      // buyer that left while the backend was read on for its usage pays the time until it left.
      const endedAt = left ? left.at : failed && lastBytesAt !== undefined ? lastBytesAt : performance.now();
      const code = ending === "timeout" ? "TOLLGATE_BACKEND_TIMEOUT" : "TOLLGATE_BACKEND_FAILED";
      const message =
        tap.stopMessage && tap.stopped === "backend_error"
          ? `the backend failed: ${tap.stopMessage}`
          : ending === "timeout"
            ? "the backend stopped answering in time"
            : "the backend failed mid-answer";
      // A buyer that leaves once the backend took its prompt pays for the prompt (nothing else was delivered).
      // A stream that delivered nothing, or failed before the model generated anything, answered nothing,
      // whatever usage the backend stated (a Messages stream's message_start states the prompt's tokens
      // before any output, then may fail or be cut).
      if (
        (!meter.delivered || (failed && !meter.generated) || !answered(meter, tap.reportedUsage)) &&
        ending !== "client_gone"
      ) {
        // The stream's headers (200) are gone; the buyer reads the failure in the error event.
        await failBeforeOutput(
          meter.delivered
            ? "the backend's stream held nothing the model generated (no content, refusal or tool call) and reported no usage; nothing is charged"
            : "backend delivered no output",
          200,
        );
        return errorEvent(`nothing was delivered, nothing is charged (${message})`, code);
      }
      // Output read after the buyer left is not delivered: charged is what it had, and the reported
      // output less what came after, within the hidden allowance.
      const outcome = left
        ? await settleDelivered(left, tap.reportedUsage, endedAt, meter.countedTokens - left.countedTokens)
        : await settleDelivered(meter, tap.reportedUsage, endedAt);
      if (!outcome) return failed ? errorEvent(message, code) : doneEvent;
      const charged = receiptFor(outcome);
      const { includeUsage } = quote.request;
      if (streamTrailer)
        return streamTrailer.receipt(charged) + (failed ? errorEvent(message, code) : doneEvent);
      const receipt = formatReceiptEvent(charged, {
        id: tap.streamId,
        object: quote.route.chunkObject,
        // OpenAI's usage-chunk shape for clients that asked for usage; one empty choice for the others.
        choices: includeUsage ? [] : [quote.route.emptyChunkChoice],
        usage: includeUsage ? charged.usage : undefined,
      });
      // An error after output still ends as an error, not a normal-looking [DONE]; the receipt comes first.
      return receipt + (failed ? errorEvent(message, code) : SSE_DONE_EVENT);
    };
    return {
      push(text) {
        if (!rowIn)
          throw new TollgateError({
            code: "TOLLGATE_INTERNAL",
            shortMessage: "stream output before the payment's row is in the ledger (wait for session.ready)",
          });
        lastBytesAt = performance.now();
        const out = tap.push(text);
        if (out && meter.delivered) served(true);
        return out;
      },
      get stopped() {
        return tap.stopped !== undefined;
      },
      leave() {
        if (parameters.stopping?.aborted) return false;
        if (left || trailer || tap.stopped !== undefined || outputReported(tap.reportedUsage)) return false;
        if (!meter.answerBegun || hiddenAllowance(meter.sawHiddenOutput) === 0) return false;
        left = {
          countedTokens: meter.countedTokens,
          reasoningTokens: meter.reasoningTokens,
          byteCeiling: meter.byteCeiling,
          sawHiddenOutput: meter.sawHiddenOutput,
          images: meter.images,
          at: performance.now(),
        };
        return true;
      },
      stopping: parameters.stopping,
      get usageReported() {
        return outputReported(tap.reportedUsage);
      },
      finish(ending) {
        trailer ??= finish(ending);
        return trailer;
      },
    };
  };

  return {
    paymentId,
    payer,
    get ready() {
      return ready();
    },
    deadlineAt,
    done,
    failBeforeOutput,
    async leftAfterPrompt() {
      await settleDelivered(newMeter(), undefined, performance.now());
    },
    async completeJson(text) {
      const endedAt = performance.now();
      const refused = await wholeAnswerRefused();
      if (refused) return refused;
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const meter = newMeter();
      const reading = quote.route.readAnswer(json);
      const missing =
        reading.error === undefined ? quote.route.missingResults?.(json, quote.request) : undefined;
      if (reading.error !== undefined || !reading.delivered || missing !== undefined) {
        const reason = `the backend answered ${missing === undefined ? `no result (${reading.error ?? "empty answer"})` : `too few results (${missing})`}; nothing is charged`;
        return backendFailed(reason);
      }
      let body = text;
      if (!meter.accept(reading)) {
        // The backend ignored the output limit: deliver only what was authorized.
        const answer = json as Record<string, unknown>;
        const cut = quote.route.cutAnswer
          ? quote.route.cutAnswer(answer, quote.choices, meter)
          : truncateAnswer(answer, quote.choices, meter);
        if (!cut || !newMeterAccepts(cut)) {
          return backendFailed(
            "the backend went past the authorized output; nothing is charged",
            "the backend went past the authorized output in a way that cannot be cut",
          );
        }
        meter.accept(quote.route.readAnswer(cut));
        body = JSON.stringify(cut);
      }
      if (!answered(meter, reading.usage)) {
        const reason =
          "the backend answered nothing the model generated (no content, refusal or tool call) and reported no usage; nothing is charged";
        return backendFailed(reason);
      }
      const settled = await settleWholeAnswer(meter, reading.usage, endedAt);
      return settled.ok ? { ...settled, body } : settled;
    },
    async completeBytes(bytes, contentType) {
      const endedAt = performance.now();
      const refused = await wholeAnswerRefused();
      if (refused) return refused;
      const reading = quote.route.readBytes?.(bytes, contentType, quote.request) ?? {
        pieces: [],
        delivered: false,
        usage: undefined,
        error: `the ${quote.routeKind} route answers JSON, not bytes`,
      };
      const meter = newMeter();
      if (reading.error !== undefined || !reading.delivered || !meter.accept(reading)) {
        const reason = `the backend answered no result (${reading.error ?? "empty answer"}); nothing is charged`;
        return backendFailed(reason);
      }
      const settled = await settleWholeAnswer(meter, reading.usage, endedAt);
      return settled.ok
        ? { ...settled, body: bytes, headers: { ...settled.headers, "content-type": contentType } }
        : settled;
    },
    createStreamWriter: () => createStreamWriter(),
    meterStream(upstream) {
      const guarded = guardBackendBody(upstream, {
        idleMs: model.backend.timeoutMs,
        deadlineAt,
        modelId: model.id,
      });
      const reader = guarded.getReader();
      const writer = createStreamWriter(() => {
        // The output limit was reached or the backend sent an error: stop the backend now.
        reader.cancel("stopped by the gateway").catch(() => undefined);
      });
      const decoder = new TextDecoder();
      const encoder = new TextEncoder();
      let closed = false;
      // A buyer that stops reading stops the reads too: the charge must not wait for it past the
      // request's time bound (its channel reservation, its authorization). What was forwarded is charged then.
      let expired = false;
      const deadline = setTimeout(
        () => {
          expired = true;
          void writer.finish("timeout").catch(() => undefined);
          reader.cancel("past the request's time bound").catch(() => undefined);
        },
        Math.max(0, deadlineAt - Date.now()),
      );
      deadline.unref();
      const end = async (
        controller: ReadableStreamDefaultController<Uint8Array>,
        ending: StreamEnding,
        rest = "",
      ) => {
        clearTimeout(deadline);
        const trailer = await writer.finish(ending);
        if (!closed) {
          closed = true;
          controller.enqueue(encoder.encode(rest + trailer));
          controller.close();
        }
      };
      /** Reads the backend's next bytes into the writer: the text to forward, or how its stream ended. */
      const readStep = async (): Promise<{ out: string } | { ending: StreamEnding; rest: string }> => {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (error) {
          if (expired) return { ending: "timeout", rest: "" };
          if (writer.stopped) return { ending: "complete", rest: "" };
          logger.warn({ paymentId, error: String(error) }, "backend stream failed");
          const timedOut = error instanceof TollgateError && error.code === "TOLLGATE_BACKEND_TIMEOUT";
          return { ending: timedOut ? "timeout" : "backend_error", rest: "" };
        }
        if (expired) return { ending: "timeout", rest: "" };
        if (next.done) return { ending: "complete", rest: writer.push(decoder.decode()) };
        const out = writer.push(decoder.decode(next.value, { stream: true }));
        if (writer.stopped) return { ending: "complete", rest: out };
        return { out };
      };
      // Set when the buyer left and the backend is read on for its usage report (`StreamWriter.leave`).
      let readingOn = false;
      let backendEnded = false;
      let pulling: Promise<void> | undefined;
      /**
       * Reads the backend on after the buyer left, forwarding nothing, until it reports its usage, ends,
       * fails or stalls (its idle timeout), or the request's time bound; then stops it and charges.
       */
      const readOn = async (reason: unknown) => {
        const { stopping } = parameters;
        const stop = () => reader.cancel("the gateway is stopping").catch(() => undefined);
        stopping?.addEventListener("abort", stop, { once: true });
        try {
          await pulling?.catch(() => undefined);
          while (
            !backendEnded &&
            !expired &&
            !writer.stopped &&
            !writer.usageReported &&
            !stopping?.aborted
          ) {
            if ("ending" in (await readStep())) break;
          }
        } finally {
          stopping?.removeEventListener("abort", stop);
        }
        clearTimeout(deadline);
        await reader.cancel(reason).catch(() => undefined);
        await writer.finish("client_gone");
      };
      return new ReadableStream<Uint8Array>(
        {
          async start(controller) {
            // Nothing is forwarded before the request's row is in the ledger.
            if (await ready()) return;
            closed = true;
            clearTimeout(deadline);
            await reader.cancel(PAYMENT_NOT_RECORDED).catch(() => undefined);
            await failBeforeOutput(PAYMENT_NOT_RECORDED, 200);
            controller.enqueue(encoder.encode(errorEvent(PAYMENT_NOT_RECORDED, "TOLLGATE_LEDGER_FAILED")));
            controller.close();
          },
          pull(controller) {
            pulling = (async () => {
              for (;;) {
                const step = await readStep();
                // A read the buyer's leaving overtook: its bytes are metered as not delivered.
                if (readingOn) {
                  if ("ending" in step) backendEnded = true;
                  return;
                }
                if ("ending" in step) return end(controller, step.ending, step.rest);
                if (step.out) {
                  controller.enqueue(encoder.encode(step.out));
                  return;
                }
              }
            })();
            return pulling;
          },
          async cancel(reason) {
            closed = true;
            if (writer.leave()) {
              // The answer had begun: the reasoning before it is spent, and reported only at the end.
              readingOn = true;
              readOn(reason).catch((error: unknown) =>
                logger.error({ paymentId, error: String(error) }, "reading the backend on failed"),
              );
              return;
            }
            clearTimeout(deadline);
            // The buyer left: decided first, so a read the cancel ends cannot pass for a complete answer.
            void writer.finish("client_gone").catch(() => undefined);
            // Stops the backend; what was delivered (at least the prompt it took) is charged.
            await reader.cancel(reason).catch(() => undefined);
          },
        },
        { highWaterMark: 0 },
      );
    },
  };

  /** A whole answer that delivered nothing the buyer paid for: told (`told`, for the row), not charged. */
  async function backendFailed(message: string, told = message) {
    await failBeforeOutput(told);
    const answer = errorAnswer("TOLLGATE_BACKEND_FAILED", message);
    return { ok: false as const, status: answer.status, body: answer.body };
  }

  function notRecorded() {
    const answer = errorAnswer("TOLLGATE_LEDGER_FAILED", PAYMENT_NOT_RECORDED);
    return { ok: false as const, status: answer.status, body: answer.body };
  }

  /** Why a whole answer that just came cannot be delivered (its row not written, the time bound passed), told and not charged; undefined when it can. */
  async function wholeAnswerRefused() {
    // A row waiting for its charge is written with it (settleDelivered).
    if (written !== undefined && !(await ready())) {
      await failBeforeOutput(PAYMENT_NOT_RECORDED, notRecorded().status);
      return notRecorded();
    }
    // An answer complete only after the request's time bound is not delivered: past it, the payment
    // may no longer be taken (an upto authorization's deadline, a channel reservation lapsed and
    // handed to the next request), so delivering it would give it away.
    if (Date.now() > deadlineAt) {
      const reason = "the answer came after the request's time bound; nothing is charged";
      await failBeforeOutput(reason, 504);
      const answer = errorAnswer("TOLLGATE_BACKEND_TIMEOUT", reason);
      return { ok: false as const, status: answer.status, body: answer.body };
    }
    return undefined;
  }

  /** Charges a whole answer found delivered: its payment header once the money is final. */
  async function settleWholeAnswer(meter: OutputMeter, usage: unknown, endedAt: number) {
    // A row written with its charge is told served once both are in (settleDelivered).
    if (written !== undefined || !parameters.channel) served(false);
    const outcome = await settleDelivered(meter, usage, endedAt);
    if (!outcome && unrecorded) return notRecorded();
    if (!outcome)
      throw new TollgateError({ code: "TOLLGATE_INTERNAL", shortMessage: "payment was already finished" });
    return {
      ok: true as const,
      headers: { [PAYMENT_RESPONSE_HEADER]: encodePaymentResponseHeader({ ...outcome.settlement, payer }) },
      outcome,
    };
  }

  function newMeterAccepts(answer: Record<string, unknown>): boolean {
    return newMeter().accept(quote.route.readAnswer(answer));
  }
}

/** A report that states the output the backend generated (OpenAI's names, as routes normalize usage to). */
function outputReported(reported: unknown): boolean {
  if (typeof reported !== "object" || reported === null) return false;
  const output = (reported as Record<string, unknown>).completion_tokens;
  return typeof output === "number" && Number.isSafeInteger(output) && output >= 0;
}

/** A backend's usage report that counts work done: a prompt read or tokens generated (any API's names). */
function reportsWork(reported: unknown): boolean {
  if (typeof reported !== "object" || reported === null) return false;
  const usage = reported as Record<string, unknown>;
  return ["prompt_tokens", "input_tokens", "completion_tokens", "output_tokens"].some(
    (field) =>
      typeof usage[field] === "number" && Number.isSafeInteger(usage[field]) && (usage[field] as number) > 0,
  );
}
