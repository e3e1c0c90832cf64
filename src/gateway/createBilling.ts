import type { PaymentRequirements } from "@x402/core/types";
import { type Logger, silentLogger, TollgateError, type TollgateErrorCode } from "../errors/index.js";
import { type FaultInjection, sponsoredApprovalOf } from "../facilitator/index.js";
import type { PaymentLedger } from "../ledger/index.js";
import {
  decodePaymentSignatureHeader,
  encodePaymentRequiredHeader,
  type HeaderReader,
  PAYMENT_REQUIRED_HEADER,
  ReasonCode,
  readPaymentHeader,
} from "../protocol/index.js";
import { type AdmitPaymentReturnType, admitPayment, type PaymentAdmissionRequest } from "./admitPayment.js";
import { correctiveOffers, orderOffers } from "./channels/channelOffers.js";
import { BATCH_SETTLEMENT, type ChannelBilling } from "./channels/createChannelBilling.js";
import { type BillingSession, createBillingSession } from "./createBillingSession.js";
import { errorAnswer } from "./errorAnswer.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import type { ModelConfig } from "./gatewayConfig.js";
import {
  type BillingTerms,
  buildOffers,
  buildPaymentRequired,
  gasSponsoringExtensions,
  matchOffer,
} from "./paymentOffers.js";
import { quoteRequest, type RequestQuote, type RouteKind } from "./quoteRequest.js";
import { type ChargeOutcome, type SettleChargeParameters, settleCharge } from "./settleCharge.js";

export type CreateBillingParameters = {
  terms: BillingTerms;
  models: ModelConfig[];
  facilitator: FacilitatorLike;
  ledger: PaymentLedger;
  /** Counts generated tokens (the model's tokenizer, or an estimate). */
  countTokens: (text: string, model: string) => number;
  /** An authorization must stay valid this long after the request's time bound (s); default 30. */
  settlementMarginSeconds?: number;
  /** Public URL prefix of the gateway for 402 `resource.url`; otherwise the request's own URL. */
  publicUrl?: string;
  /**
   * The payer's balance of the asset, read from the chain. When given, a payment is served only if
   * the maxima of the payer's payments in flight, plus this one, fit in it: concurrent requests can
   * then never run a payer into debt. Without it (no chain access) each payment is checked alone.
   */
  readPayerFunds?: (payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>;
  logger?: Logger;
  /** Bound on the facilitator's verify (ms); past it the request gets 503 and nothing runs. Default 15 s. */
  verifyTimeoutMs?: number;
  /** Bound on the wait for the facilitator's settle (ms); see `settleRecordedCharge`. Default 90 s. */
  settleTimeoutMs?: number;
  /** How often a request being served refreshes its ledger row (ms); default 10 s. */
  heartbeatMs?: number;
  /** Test-only crash points (`after_claim`, `mid_stream`, `after_metering`, `after_settlement`). */
  faultInjection?: FaultInjection;
  /** Payment channels (`batch-settlement`); without them no channel offer is made. */
  channels?: ChannelBilling;
  /** The schemes offered, in order; default upto, batch-settlement, exact. */
  schemes?: readonly string[];
};

/** Default bound on the facilitator's verify. */
export const DEFAULT_VERIFY_TIMEOUT_MS = 15_000;

/** One incoming paid (or not yet paid) inference request. */
export type BillingRequest = {
  /** Full request URL; its path names the resource in the 402. */
  url: string;
  headers: HeaderReader;
  /** The parsed JSON body. */
  body: unknown;
  routeKind: RouteKind;
};

/** What to do with a request: answer it now (402, 400, 409, 503…), or serve it under a session. */
export type BillingDecision =
  | { action: "respond"; status: number; headers: Record<string, string>; body: Record<string, unknown> }
  | { action: "serve"; quote: RequestQuote; session: BillingSession };

export type Billing = {
  readonly terms: BillingTerms;
  readonly models: ReadonlyMap<string, ModelConfig>;
  /** Payment channels, when this gateway offers `batch-settlement`. */
  readonly channels?: ChannelBilling;
  begin(request: BillingRequest): Promise<BillingDecision>;
  /** The payments ledger this billing claims into. */
  readonly ledger: PaymentLedger;
  /** Checks, verifies and claims a payment for work priced elsewhere (a paid MCP tool). */
  admit(request: PaymentAdmissionRequest): Promise<AdmitPaymentReturnType>;
  /** Records an admitted payment's usage and settles its charge; a failed settlement becomes a debt. */
  settle(charge: SettlePaidWork): Promise<ChargeOutcome>;
};

/** What `Billing.settle` needs of an admitted payment. */
export type SettlePaidWork = Pick<
  SettleChargeParameters,
  "paymentId" | "payload" | "requirements" | "usage" | "chargeAtomic"
>;

/**
 * Tollgate's billing core, independent of any HTTP framework: quotes a request, answers 402
 * with upto (and exact) offers, checks and verifies a payment, claims it once in the ledger,
 * and hands back a session that meters the response and settles its actual cost.
 */
export function createBilling({
  terms,
  models: modelList,
  facilitator,
  ledger,
  countTokens,
  settlementMarginSeconds = 30,
  publicUrl,
  readPayerFunds,
  logger = silentLogger,
  verifyTimeoutMs = DEFAULT_VERIFY_TIMEOUT_MS,
  settleTimeoutMs,
  heartbeatMs,
  faultInjection,
  channels,
  schemes,
}: CreateBillingParameters): Billing {
  const models = new Map(modelList.map((model) => [model.id, model]));

  const respond = (
    status: number,
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): BillingDecision => ({ action: "respond", status, headers, body });
  const refuse = (code: TollgateErrorCode, message: string, extra: Record<string, unknown> = {}) => {
    const answer = errorAnswer(code, message, extra);
    return respond(answer.status, answer.body, answer.headers);
  };
  const replayed = (status: string) =>
    refuse(
      "TOLLGATE_PAYMENT_REPLAYED",
      `this payment authorization was already used (status ${status}); sign a new one`,
    );
  const resourceUrlOf = (url: string) => {
    if (!publicUrl) return url;
    const { pathname, search } = new URL(url);
    return `${publicUrl.replace(/\/+$/, "")}${pathname}${search}`;
  };

  const admit = (admission: PaymentAdmissionRequest) =>
    admitPayment({
      ...admission,
      terms,
      ledger,
      facilitator,
      settlementMarginSeconds,
      verifyTimeoutMs,
      readPayerFunds,
      logger,
    });
  const settle = (charge: SettlePaidWork) =>
    settleCharge({ ...charge, ledger, facilitator, logger, settleTimeoutMs, faultInjection });

  async function begin(request: BillingRequest): Promise<BillingDecision> {
    if (typeof request.body !== "object" || request.body === null || Array.isArray(request.body)) {
      return refuse("TOLLGATE_REQUEST_INVALID", "the request body must be a JSON object", { param: null });
    }
    const body = request.body as Record<string, unknown>;
    if (typeof body.model !== "string")
      return refuse("TOLLGATE_REQUEST_INVALID", "model is required", { param: "model" });
    const model = models.get(body.model);
    if (!model)
      return refuse("TOLLGATE_MODEL_UNKNOWN", `model ${body.model} is not served here`, { param: "model" });
    let quote: RequestQuote;
    try {
      quote = quoteRequest(model, request.routeKind, body);
    } catch (error) {
      if (error instanceof TollgateError && error.code === "TOLLGATE_REQUEST_INVALID")
        return refuse(error.code, error.shortMessage, {
          param: (error.details.field as string | undefined) ?? null,
        });
      throw error;
    }
    const offers = orderOffers(
      [
        ...buildOffers(quote, terms),
        ...(channels && quote.maxAtomic !== undefined ? [channels.offer(quote.maxAtomic)] : []),
      ],
      schemes,
    );
    if (offers.length === 0) {
      return refuse("TOLLGATE_FACILITATOR_UNAVAILABLE", "no payment scheme is available right now");
    }
    const paymentRequired = (error?: string, withOffers = offers) => {
      const required = buildPaymentRequired(
        quote,
        withOffers,
        resourceUrlOf(request.url),
        error,
        gasSponsoringExtensions(offers, terms),
      );
      return respond(402, required as unknown as Record<string, unknown>, {
        [PAYMENT_REQUIRED_HEADER]: encodePaymentRequiredHeader(required),
      });
    };

    const header = readPaymentHeader(request.headers);
    if (header === undefined) return paymentRequired();
    const decoded = decodePaymentSignatureHeader(header);
    if (!decoded.ok) {
      return refuse("TOLLGATE_PAYMENT_MALFORMED", `malformed payment header: ${decoded.message}`, {
        reason: decoded.reason,
        field: decoded.field ?? null,
      });
    }
    const payment = decoded.payload;
    // PostgreSQL cannot store U+0000 in JSON text: refuse it here rather than fail the claim after verify.
    if (JSON.stringify(payment).includes("\\u0000")) {
      return refuse(
        "TOLLGATE_PAYMENT_MALFORMED",
        "malformed payment header: a string contains a NUL character",
        {
          reason: "invalid_payload",
          field: null,
        },
      );
    }
    const matched = matchOffer(payment, offers);
    if (!matched.ok) return paymentRequired(`${matched.reason}: ${matched.message}`);
    const sponsored = sponsoredApprovalOf(payment);
    if (sponsored && !terms.gasSponsoring?.includes(sponsored.extension)) {
      return paymentRequired(
        `${ReasonCode.gasSponsoringRefused}: this gateway's facilitator does not sponsor ${sponsored.extension}; approve Permit2 on ${matched.requirements.asset} first`,
      );
    }

    if (channels && matched.requirements.scheme === BATCH_SETTLEMENT) {
      const accepted = await channels.accept({ payment, requirements: matched.requirements, quote });
      if (!accepted.ok) {
        if (accepted.kind === "malformed")
          return refuse("TOLLGATE_PAYMENT_MALFORMED", `malformed payment header: ${accepted.message}`, {
            reason: "invalid_payload",
            field: accepted.field,
          });
        if (accepted.kind === "unavailable")
          return refuse("TOLLGATE_FACILITATOR_UNAVAILABLE", accepted.message);
        return paymentRequired(
          accepted.reason,
          accepted.channel ? correctiveOffers(offers, accepted.channel) : offers,
        );
      }
      const { reservation } = accepted;
      const claim = await ledger
        .claim(
          {
            network: terms.network,
            payer: accepted.payer,
            nonce: accepted.nonce,
            scheme: BATCH_SETTLEMENT,
            model: model.id,
            route: new URL(request.url).pathname,
            asset: matched.requirements.asset,
            payTo: matched.requirements.payTo,
            maxAtomic: matched.signedMaxAtomic,
            paymentPayload: payment,
            paymentRequirements: matched.requirements,
          },
          { serving: true },
        )
        .catch(async (error: unknown) => {
          await reservation.release().catch(() => undefined);
          throw error;
        });
      if (!claim.claimed) {
        await reservation.release();
        return replayed(claim.existing.status);
      }
      const tokenizer = model.tokenizer ?? model.id;
      return {
        action: "serve",
        quote,
        session: createBillingSession({
          quote,
          paymentId: claim.payment.id,
          payer: accepted.payer,
          payload: payment,
          requirements: matched.requirements as PaymentRequirements,
          signedMaxAtomic: matched.signedMaxAtomic,
          ledger,
          facilitator,
          countTokens: (text) => countTokens(text, tokenizer),
          countPromptTokens: () => quote.route.countPromptTokens(quote.request, model),
          logger,
          heartbeatMs,
          channel: reservation,
        }),
      };
    }

    const admitted = await admit({
      payment,
      offers,
      timeBoundMs: quote.timeBoundMs,
      maxAtomic: quote.maxAtomic,
      model: model.id,
      route: new URL(request.url).pathname,
    });
    if (!admitted.admitted) {
      const { refusal } = admitted;
      return refusal.kind === "payment_required"
        ? paymentRequired(refusal.error)
        : refuse(refusal.code, refusal.message);
    }
    faultInjection?.("after_claim");

    const tokenizer = model.tokenizer ?? model.id;
    return {
      action: "serve",
      quote,
      session: createBillingSession({
        quote,
        paymentId: admitted.paymentId,
        payer: admitted.payer,
        payload: payment,
        requirements: admitted.requirements,
        signedMaxAtomic: admitted.signedMaxAtomic,
        ledger,
        facilitator,
        countTokens: (text) => countTokens(text, tokenizer),
        countPromptTokens: () => quote.route.countPromptTokens(quote.request, model),
        logger,
        settleTimeoutMs,
        heartbeatMs,
        faultInjection,
      }),
    };
  }

  return { terms, models, channels, ledger, begin, admit, settle };
}
