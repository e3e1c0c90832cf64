import type { PaymentRequirements } from "@x402/core/types";
import {
  type Logger,
  REQUEST_ID_HEADER,
  requestIdOf,
  runWithRequestId,
  silentLogger,
  TollgateError,
  type TollgateErrorCode,
} from "../errors/index.js";
import { sponsoredApprovalOf } from "../facilitator/index.js";
import type { PaymentLedger } from "../ledger/index.js";
import {
  authorizationKey,
  decodePaymentSignatureHeader,
  encodePaymentRequiredHeader,
  type HeaderReader,
  PAYMENT_REQUIRED_HEADER,
  ReasonCode,
  readPaymentHeader,
} from "../protocol/index.js";
import { type AdmitPaymentReturnType, admitPayment, type PaymentAdmissionRequest } from "./admitPayment.js";
import { authorizationDeadline } from "./authorizationDeadline.js";
import { type BillingEventListener, safeBillingEmitter } from "./BillingEvent.js";
import { correctiveOffers, orderOffers } from "./channels/channelOffers.js";
import { BATCH_SETTLEMENT, type ChannelBilling } from "./channels/createChannelBilling.js";
import { type BillingSession, createBillingSession } from "./createBillingSession.js";
import type { ReceiptSigner } from "./createReceiptSigner.js";
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
  /** Signs every settled response's receipts with the seller's key; its address goes in `/v1/models`. */
  receiptSigner?: ReceiptSigner | undefined;
  /** Receives the lifecycle of every request (see `BillingEvent`), synchronously where it happens. */
  onBillingEvent?: BillingEventListener;
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

/**
 * What to do with a request: answer it now (402, 400, 409, 503…), or serve it under a session.
 * `requestId` goes back to the client in `x-request-id` (a respond decision's headers already hold it).
 */
export type BillingDecision =
  | {
      action: "respond";
      requestId: string;
      status: number;
      headers: Record<string, string>;
      body: Record<string, unknown>;
    }
  | { action: "serve"; requestId: string; quote: RequestQuote; session: BillingSession };

export type Billing = {
  readonly terms: BillingTerms;
  readonly models: ReadonlyMap<string, ModelConfig>;
  /** The address that signs receipts, when receipts are signed. */
  readonly receiptSigner: `0x${string}` | undefined;
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
  receiptSigner,
  onBillingEvent,
  channels,
  schemes,
}: CreateBillingParameters): Billing {
  const emit = safeBillingEmitter(onBillingEvent, logger);
  const models = new Map(modelList.map((model) => [model.id, model]));

  const respond = (
    status: number,
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Answer => ({ action: "respond", status, headers, body });
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

  /** Decides, then tells listeners how the request was answered and names it in `x-request-id`. */
  async function begin(request: BillingRequest): Promise<BillingDecision> {
    const requestId = requestIdOf(request.headers.get(REQUEST_ID_HEADER));
    const seen: Seen = { requestId, route: pathOf(request.url), startedAt: Date.now() };
    const decision = await runWithRequestId(requestId, () => decide(request, seen));
    if (decision.action === "serve") return { ...decision, requestId };
    const base = { requestId, route: seen.route, at: Date.now() };
    const model = seen.model;
    if (decision.status === 402 && !seen.scheme && model !== undefined)
      emit({ ...base, type: "quoted", model, status: 402, maxAtomic: seen.maxAtomic?.toString() });
    else if (decision.status === 409 && model !== undefined && seen.scheme)
      emit({
        ...base,
        type: "replayed",
        model,
        status: 409,
        scheme: seen.scheme,
        paymentStatus: seen.replayedStatus ?? "",
      });
    else
      emit({
        ...base,
        type: "refused",
        model,
        status: decision.status,
        reason: refusalReasonOf(decision.body),
        scheme: seen.scheme,
        verifyMs: seen.verifyMs,
      });
    return { ...decision, requestId, headers: { ...decision.headers, [REQUEST_ID_HEADER]: requestId } };
  }

  async function decide(request: BillingRequest, seen: Seen): Promise<Answer> {
    const log = logger.child({ requestId: seen.requestId });
    if (typeof request.body !== "object" || request.body === null || Array.isArray(request.body)) {
      return refuse("TOLLGATE_REQUEST_INVALID", "the request body must be a JSON object", { param: null });
    }
    const body = request.body as Record<string, unknown>;
    if (typeof body.model !== "string")
      return refuse("TOLLGATE_REQUEST_INVALID", "model is required", { param: "model" });
    const model = models.get(body.model);
    if (!model)
      return refuse("TOLLGATE_MODEL_UNKNOWN", `model ${body.model} is not served here`, { param: "model" });
    seen.model = model.id;
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
    seen.maxAtomic = quote.maxAtomic;
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
    seen.scheme = payment.accepted?.scheme ?? "unknown";
    const matched = matchOffer(payment, offers);
    if (!matched.ok) return paymentRequired(`${matched.reason}: ${matched.message}`);
    const sponsored = sponsoredApprovalOf(payment);
    if (sponsored && !terms.gasSponsoring?.includes(sponsored.extension)) {
      return paymentRequired(
        `${ReasonCode.gasSponsoringRefused}: this gateway's facilitator does not sponsor ${sponsored.extension}; approve Permit2 on ${matched.requirements.asset} first`,
      );
    }

    if (channels && matched.requirements.scheme === BATCH_SETTLEMENT) {
      const acceptStartedAt = performance.now();
      const accepted = await channels.accept({ payment, requirements: matched.requirements, quote });
      seen.verifyMs = performance.now() - acceptStartedAt;
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
      const inDebt = await ledger.hasOpenDebt(terms.network, accepted.payer).catch(async (error: unknown) => {
        await reservation.release().catch(() => undefined);
        throw error;
      });
      if (inDebt) {
        await reservation.release();
        return paymentRequired(
          `${ReasonCode.payerInDebt}: an earlier charge of this payer is unpaid; settle it first`,
        );
      }
      const claim = await ledger
        .claim(
          {
            network: terms.network,
            payer: accepted.payer,
            nonce: accepted.nonce,
            scheme: BATCH_SETTLEMENT,
            model: model.id,
            route: seen.route,
            requestId: seen.requestId,
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
        seen.replayedStatus = claim.existing.status;
        return replayed(claim.existing.status);
      }
      const channelPaid = {
        requestId: seen.requestId,
        route: seen.route,
        paymentId: claim.payment.id,
        model: model.id,
        scheme: BATCH_SETTLEMENT,
        asset: matched.requirements.asset,
        payer: accepted.payer,
      };
      emit({
        ...channelPaid,
        type: "verified",
        at: Date.now(),
        maxAtomic: matched.signedMaxAtomic,
        verifyMs: seen.verifyMs,
      });
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
          logger: log,
          heartbeatMs,
          channel: reservation,
          // A voucher has no nonce: the receipt names the channel and its cumulative charge instead.
          receipts: receiptSigner && {
            signer: receiptSigner,
            resourceUrl: resourceUrlOf(request.url),
            route: pathOf(request.url),
            nonce: "0",
          },
          event: channelPaid,
          startedAt: seen.startedAt,
          emit,
        }),
      };
    }

    // The authorization must outlive the work: the longest the request may run, plus time to settle.
    const deadline = authorizationDeadline(payment);
    const neededSeconds = Math.ceil(quote.timeBoundMs / 1000) + settlementMarginSeconds;
    const nowSeconds = Math.floor(Date.now() / 1000);
    if (deadline === undefined || deadline < nowSeconds + neededSeconds) {
      return paymentRequired(
        `${ReasonCode.authorizationExpiresTooSoon}: the authorization must stay valid at least ${neededSeconds} s from now (this request may run ${Math.ceil(quote.timeBoundMs / 1000)} s, then settle); it expires in ${deadline === undefined ? "an unknown time" : `${deadline - nowSeconds} s`}. Sign with the offer's maxTimeoutSeconds (${terms.maxTimeoutSeconds})`,
      );
    }
    const key = authorizationKey(payment);

    const admission = await ledger.admission(key);
    if (admission.inDebt) {
      return paymentRequired(
        `${ReasonCode.payerInDebt}: an earlier charge of this payer is unpaid; settle it first`,
      );
    }
    if (admission.existing) {
      seen.replayedStatus = admission.existing.status;
      return replayed(admission.existing.status);
    }

    let verified: Awaited<ReturnType<FacilitatorLike["verify"]>>;
    let fundsAtomic: bigint | undefined;
    const verifyStartedAt = performance.now();
    try {
      const funds = readPayerFunds?.(key.payer as `0x${string}`, matched.requirements.asset as `0x${string}`);
      funds?.catch(() => undefined);
      verified = await withTimeout(facilitator.verify(payment, matched.requirements), verifyTimeoutMs);
      seen.verifyMs = performance.now() - verifyStartedAt;
      if (verified.isValid && funds) fundsAtomic = await withTimeout(funds, verifyTimeoutMs);
    } catch (error) {
      log.warn({ error: String(error) }, "facilitator unavailable during verify");
      return refuse(
        "TOLLGATE_FACILITATOR_UNAVAILABLE",
        "the payment facilitator or chain is unreachable; no inference was run",
      );
    }
    if (!verified.isValid) return paymentRequired(verified.invalidReason ?? "invalid_payment");

    // Inference starts right away: the row is claimed straight into `serving`.
    const claimInput = {
      ...key,
      scheme: matched.requirements.scheme,
      model: model.id,
      route: seen.route,
      requestId: seen.requestId,
      asset: matched.requirements.asset,
      payTo: matched.requirements.payTo,
      // What this payment may cost: its own quote caps it, whatever larger amount was signed.
      maxAtomic:
        matched.requirements.scheme === "upto"
          ? capOf(quote.maxAtomic, matched.signedMaxAtomic)
          : matched.signedMaxAtomic,
      paymentPayload: payment,
      paymentRequirements: matched.requirements,
    };
    const claim =
      fundsAtomic === undefined
        ? await ledger.claim(claimInput, { serving: true })
        : await ledger.claimWithinFunds(claimInput, fundsAtomic, { serving: true });
    if (!claim.claimed && claim.existing) {
      seen.replayedStatus = claim.existing.status;
      return replayed(claim.existing.status);
    }
    if (!claim.claimed) {
      return paymentRequired(
        `${ReasonCode.insufficientFunds}: this payer's payments in flight already reserve ${claim.reservedAtomic} of its balance ${claim.fundsAtomic}, and this one may cost ${claimInput.maxAtomic}; retry when they have settled`,
      );
    }
    const paid = {
      requestId: seen.requestId,
      route: seen.route,
      paymentId: claim.payment.id,
      model: model.id,
      scheme: matched.requirements.scheme,
      asset: matched.requirements.asset,
      payer: key.payer,
    };
    emit({
      ...paid,
      type: "verified",
      at: Date.now(),
      maxAtomic: claimInput.maxAtomic,
      verifyMs: seen.verifyMs ?? 0,
    });

    const tokenizer = model.tokenizer ?? model.id;
    return {
      action: "serve",
      quote,
      session: createBillingSession({
        quote,
        paymentId: claim.payment.id,
        payer: key.payer,
        payload: payment,
        requirements: matched.requirements as PaymentRequirements,
        signedMaxAtomic: matched.signedMaxAtomic,
        ledger,
        facilitator,
        countTokens: (text) => countTokens(text, tokenizer),
        countPromptTokens: () => quote.route.countPromptTokens(quote.request, model),
        logger: log,
        settleTimeoutMs,
        heartbeatMs,
        receipts: receiptSigner && {
          signer: receiptSigner,
          resourceUrl: resourceUrlOf(request.url),
          route: claimInput.route,
          nonce: key.nonce,
        },
        event: paid,
        startedAt: seen.startedAt,
        emit,
      }),
    };
  }

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
    settleCharge({ ...charge, ledger, facilitator, logger, settleTimeoutMs });

  return { terms, models, channels, receiptSigner: receiptSigner?.address, ledger, begin, admit, settle };
}

/** What `begin` learns while deciding, for the event that tells how the request was answered. */
type Seen = {
  requestId: string;
  route: string;
  startedAt: number;
  model?: string;
  maxAtomic?: bigint | undefined;
  /** Set once a payment came with the request. */
  scheme?: string;
  verifyMs?: number;
  replayedStatus?: string;
};

type Answer =
  | { action: "respond"; status: number; headers: Record<string, string>; body: Record<string, unknown> }
  | { action: "serve"; quote: RequestQuote; session: BillingSession };

/** The path of a request URL; a URL that does not parse (an odd Host header) is kept whole rather than refused. */
function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return url;
  }
}

/** The stable part of a refusal: the error code, or the x402 reason before its explanation. */
function refusalReasonOf(body: Record<string, unknown>): string {
  const error = body.error;
  if (typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "string")
    return (error as { code: string }).code;
  if (typeof error === "string" && error !== "") return error.split(":")[0] ?? error;
  return "payment_required";
}

/** The most a payment may be charged: the request's own maximum, or the signed amount if lower. */
function capOf(quoteMaxAtomic: bigint | undefined, signedMaxAtomic: bigint): bigint {
  return quoteMaxAtomic !== undefined && quoteMaxAtomic < signedMaxAtomic ? quoteMaxAtomic : signedMaxAtomic;
}

/** Rejects when `promise` takes longer than `ms`; the late result is dropped. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`facilitator did not answer within ${ms} ms`)), ms);
  });
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
