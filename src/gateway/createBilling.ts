import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import type { PublicClient } from "viem";
import {
  type Logger,
  REQUEST_ID_HEADER,
  requestIdOf,
  runWithRequestId,
  silentLogger,
  TollgateError,
  type TollgateErrorCode,
} from "../errors/index.js";
import type { ClaimPaymentInput, PaymentLedger } from "../ledger/index.js";
import {
  decodePaymentSignatureHeader,
  encodePaymentRequiredHeader,
  type HeaderReader,
  PAYMENT_REQUIRED_HEADER,
  readPaymentHeader,
} from "../protocol/index.js";
import {
  type AdmitPaymentReturnType,
  admitMatchedPayment,
  admitPayment,
  matchPayment,
  PAYER_IN_DEBT,
  type PaymentAdmissionRefusal,
  type PaymentAdmissionRequest,
} from "./admitPayment.js";
import { type BillingEvent, type BillingEventListener, safeBillingEmitter } from "./BillingEvent.js";
import { chainReadersOf, facilitatorChainOf } from "./chainReaders.js";
import { correctiveOffers, DEFAULT_SCHEME_ORDER, orderOffers } from "./channels/channelOffers.js";
import { BATCH_SETTLEMENT, type ChannelBilling } from "./channels/createChannelBilling.js";
import { type BillingSession, createBillingSession } from "./createBillingSession.js";
import type { ReceiptSigner } from "./createReceiptSigner.js";
import { errorAnswer } from "./errorAnswer.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import type { ModelConfig } from "./gatewayConfig.js";
import { servedRoutes } from "./modelPriceCoverage.js";
import { nextTurn } from "./nextTurn.js";
import {
  type BillingTerms,
  buildOffers,
  buildPaymentRequired,
  gasSponsoringExtensions,
  offerPricingOf,
} from "./paymentOffers.js";
import { exactPriceRefusal, quoteRequest, type RequestQuote, type RouteKind } from "./quoteRequest.js";
import { releaseDroppedPayment } from "./releaseDroppedPayment.js";
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
   * The chain the payments settle on, for the `read*` readers below that are not given. Default: the
   * chain of an in-process facilitator (`createFacilitator`) on `terms.network`. With neither (a remote
   * facilitator and no chain), payments are served with no funds checks, and a warning is logged.
   */
  chain?: PublicClient;
  /**
   * The payer's balance of the asset, read from the chain. When given, a payment is served only if
   * the maxima of the payer's payments in flight, plus this one, fit in it: concurrent requests can
   * then never run a payer into debt. Without it (no chain access) each payment is checked alone.
   */
  readPayerFunds?: (payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>;
  /** The payer's allowance of the asset to Permit2: Permit2 payments in flight must fit in it too. */
  readPermit2Allowance?: (payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>;
  /** The payer's EIP-2612 nonce on the asset: a payment's permit spent by another is not counted on. */
  readPermitNonce?: (payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>;
  /**
   * The chain's latest block time (unix s). When given, an authorization must also outlive the request
   * by the chain's clock, which is what settles it, should this host's clock run behind.
   */
  readChainSeconds?: () => Promise<number>;
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
  /**
   * The caller starts its backend request before a voucher's signature is checked, and calls the
   * decision's `confirm` once the request is on its way (so the check overlaps the backend's first
   * bytes). Only for a handler whose one effect is a backend request it can abort: nothing is forwarded
   * or charged before `confirm` passed. Default false: every check is made before `begin` returns.
   */
  deferVoucherSignature?: boolean;
};

/** A decision to answer the request now, with this status, headers and body. */
export type RespondDecision = {
  action: "respond";
  requestId: string;
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
};

/**
 * What to do with a request: answer it now (402, 400, 409, 503…), or serve it under a session.
 * `requestId` goes back to the client in `x-request-id` (a respond decision's headers already hold it).
 */
export type BillingDecision =
  | RespondDecision
  | {
      action: "serve";
      requestId: string;
      quote: RequestQuote;
      session: BillingSession;
      /**
       * With `deferVoucherSignature`, when a check was left: makes it, and returns the answer to give
       * instead of serving (the backend request must then be aborted), or undefined to serve.
       */
      confirm?: (onRefused?: () => void) => Promise<RespondDecision | undefined>;
    };

export type Billing = {
  readonly terms: BillingTerms;
  readonly models: ReadonlyMap<string, ModelConfig>;
  /** The address that signs receipts, when receipts are signed. */
  readonly receiptSigner: `0x${string}` | undefined;
  /** Payment channels, when this gateway offers `batch-settlement`. */
  readonly channels?: ChannelBilling;
  /** The schemes offered, in the order a 402 lists them. */
  readonly schemes: readonly string[];
  begin(request: BillingRequest): Promise<BillingDecision>;
  /** The payments ledger this billing claims into. */
  readonly ledger: PaymentLedger;
  /** Checks, verifies and claims a payment for work priced elsewhere (a paid MCP tool). */
  admit(request: PaymentAdmissionRequest): Promise<AdmitPaymentReturnType>;
  /** Records an admitted payment's usage and settles its charge; a failed settlement becomes a debt. */
  settle(charge: SettlePaidWork): Promise<ChargeOutcome>;
  /** Ends an admitted payment whose work failed: nothing is charged (the row ends `failed`). */
  fail(paymentId: number, reason: string): Promise<void>;
  /**
   * Tells the listeners that work priced elsewhere (a paid MCP tool) was asked for without a payment
   * and answered with its payment requirements: a 402 quote, as a route's is told.
   */
  paymentRequired(work: PaymentRequiredWork): void;
  /** Resolves once every request served so far has its money final (settled, zero, debt or failed). */
  whenSettled(): Promise<void>;
  /**
   * The gateway is stopping: a stream whose buyer left is no longer read on for its usage report; it is
   * stopped and charged what it delivered (`BillingSession.meterStream`).
   */
  stopReadingOn(): void;
};

/** What `Billing.paymentRequired` tells of work asked for without a payment. */
export type PaymentRequiredWork = {
  /** The work's name in the ledger and the metrics (a tool's name). */
  model: string;
  /** Its resource URL, as `admit` is given it. */
  route: string;
  /** The most it may cost, as offered. */
  maxAtomic: bigint | undefined;
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
export function createBilling(parameters: CreateBillingParameters): Billing {
  const {
    terms: givenTerms,
    models: modelList,
    facilitator,
    ledger,
    countTokens,
    settlementMarginSeconds = 30,
    publicUrl,
    chain,
    logger = silentLogger,
    verifyTimeoutMs = DEFAULT_VERIFY_TIMEOUT_MS,
    settleTimeoutMs,
    heartbeatMs,
    receiptSigner,
    onBillingEvent,
    channels,
    schemes,
  } = parameters;
  const emit = safeBillingEmitter(onBillingEvent, logger);
  const models = new Map(modelList.map((model) => [model.id, model]));
  const terms = withServableSponsoring(givenTerms, facilitator, logger);

  const respond = (
    status: number,
    body: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Respond => ({ action: "respond", status, headers, body });
  const refuse = (code: TollgateErrorCode, message: string, extra: Record<string, unknown> = {}) => {
    const answer = errorAnswer(code, message, extra);
    return respond(answer.status, answer.body, answer.headers);
  };
  // What is not given is read from the chain given, or from the in-process facilitator's.
  const readChain = chain ?? facilitatorChainOf(facilitator, terms.network);
  const fromChain = readChain ? chainReadersOf(readChain) : undefined;
  const admission = {
    terms,
    ledger,
    facilitator,
    settlementMarginSeconds,
    verifyTimeoutMs,
    readPayerFunds: parameters.readPayerFunds ?? fromChain?.readPayerFunds,
    readPermit2Allowance: parameters.readPermit2Allowance ?? fromChain?.readPermit2Allowance,
    readPermitNonce: parameters.readPermitNonce ?? fromChain?.readPermitNonce,
    readChainSeconds: parameters.readChainSeconds ?? fromChain?.readChainSeconds,
  };
  if (!admission.readPayerFunds)
    logger.warn(
      "no chain to read payers' balances (give createBilling a chain, or readPayerFunds): each payment is checked alone, so one payer's requests sent at once may be served beyond what it holds, and what it cannot pay becomes a debt",
    );
  // The requests being served: a gateway that stops waits for their money to be final.
  const open = new Set<Promise<unknown>>();
  const stopping = new AbortController();
  const tracked = (session: BillingSession): BillingSession => {
    const finished = session.done.catch(() => undefined);
    open.add(finished);
    void finished.finally(() => open.delete(finished));
    return session;
  };

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
    if (decision.action === "serve") {
      const { confirm, ...serve } = decision;
      if (!confirm) return { ...serve, requestId };
      return {
        ...serve,
        requestId,
        confirm: async (onRefused?: () => void) => {
          const refusal = await runWithRequestId(requestId, () => confirm(onRefused));
          return refusal && told(refusal, seen);
        },
      };
    }
    return told(decision, seen);
  }

  /** Tells listeners how a request was answered, and names it in `x-request-id`. */
  function told(decision: Respond, seen: Seen): RespondDecision {
    const { requestId } = seen;
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
    if (!model) {
      // Name what is served on this route, so that a typo is seen at once.
      const served = [...models.values()]
        .filter((candidate) => servedRoutes(candidate).includes(request.routeKind))
        .map((candidate) => candidate.id);
      const listed =
        served.length === 0
          ? "no model is served on this route"
          : `the models served on this route: ${served.slice(0, 20).join(", ")}${served.length > 20 ? ", …" : ""}`;
      return refuse(
        "TOLLGATE_MODEL_UNKNOWN",
        `model ${body.model.length > 100 ? `${body.model.slice(0, 100)}…` : body.model} is not served here; ${listed} (GET /v1/models lists them with their prices)`,
        { param: "model" },
      );
    }
    seen.model = model.id;
    let quote: RequestQuote;
    try {
      quote = await quoteRequest(model, request.routeKind, body);
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
        // A request that costs nothing (a free model) is no reason to open a channel: no voucher can pay 0.
        ...(channels && quote.maxAtomic !== undefined && quote.maxAtomic > 0n
          ? [channels.offer(quote.maxAtomic, { pricing: offerPricingOf(quote) })]
          : []),
      ],
      schemes,
    );
    if (offers.length === 0) {
      // A per-token model sold only at its fixed price (schemes without upto): this request is beyond that price.
      if (quote.exactRefusal !== undefined) {
        const refusal = exactPriceRefusal(model, {
          reason: quote.exactRefusal,
          field: quote.exactRefusalField,
        });
        return refuse(refusal.code, refusal.shortMessage, { param: quote.exactRefusalField ?? null });
      }
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
    const answerRefusal = (refusal: PaymentAdmissionRefusal) => {
      if (refusal.kind === "payment_required") return paymentRequired(refusal.error);
      if (refusal.paymentStatus !== undefined) seen.replayedStatus = refusal.paymentStatus;
      return refuse(refusal.code, refusal.message);
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
    seen.scheme = payment.accepted?.scheme ?? "unknown";
    const matched = matchPayment(payment, offers, terms);
    if (!matched.ok) return answerRefusal(matched.refusal);

    if (channels && matched.requirements.scheme === BATCH_SETTLEMENT) {
      const acceptStartedAt = performance.now();
      const accepted = await channels.accept({
        payment,
        requirements: matched.requirements,
        quote,
        deferSignature: request.deferVoucherSignature === true,
      });
      seen.verifyMs = performance.now() - acceptStartedAt;
      const refuseChannelPayment = (refused: Extract<typeof accepted, { ok: false }>) => {
        if (refused.kind === "malformed")
          return refuse("TOLLGATE_PAYMENT_MALFORMED", `malformed payment header: ${refused.message}`, {
            reason: "invalid_payload",
            field: refused.field,
          });
        if (refused.kind === "unavailable")
          return refuse("TOLLGATE_FACILITATOR_UNAVAILABLE", refused.message);
        // The scheme's own reasons stay bare (its client matches them whole); Tollgate's carry words.
        const words = refused.reason.startsWith("tollgate_") && !refused.reason.includes(":");
        return paymentRequired(
          words ? `${refused.reason}: ${refused.message}` : refused.reason,
          refused.channel ? correctiveOffers(offers, refused.channel) : offers,
        );
      };
      if (!accepted.ok) return refuseChannelPayment(accepted);
      const { reservation } = accepted;
      // A payer in debt is refused here; the request's row is written while it is served (see below),
      // and nothing is forwarded or charged before it is in (a failed write fails the request, unserved).
      const paymentId = await ledger
        .allocateUnlessInDebt({ network: terms.network, payer: accepted.payer })
        .catch(async (error: unknown) => {
          await accepted.checkSignature?.().catch(() => undefined);
          await reservation.release().catch(() => undefined);
          throw error;
        });
      if (paymentId === undefined) {
        // Whether a payer is in debt is told only to a voucher it signed.
        const bad = await accepted.checkSignature?.();
        if (bad) return refuseChannelPayment(bad);
        await reservation.release();
        return paymentRequired(PAYER_IN_DEBT);
      }
      const claim: ClaimPaymentInput = {
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
        // The row keeps the voucher, the channel's config and the offer accepted. The payload's extensions
        // are not kept: the channel scheme reads none, and the official client echoes the 402's own in
        // every voucher (1.3 kB of gas-sponsoring schema, which would cost each row's write a third more).
        paymentPayload: { ...payment, extensions: undefined },
        paymentRequirements: matched.requirements,
      };
      const write = async () => {
        const claimed = await ledger.claim(claim, { serving: true, id: paymentId });
        if (!claimed.claimed)
          throw new Error(`payment ${paymentId}'s reservation nonce was already recorded`);
      };
      // A voucher whose signature is left to `confirm`: serving waits for the check, which the caller
      // makes once its backend request is on its way.
      let confirmedAs: (passed: boolean) => void = () => {};
      const confirmed = accepted.checkSignature
        ? new Promise<boolean>((resolve) => {
            confirmedAs = resolve;
          })
        : undefined;
      // A stream's row is written on the next turn of the event loop, once the backend request is on
      // its way (PGlite runs in this thread: a statement started now would hold the request back), and
      // its first token waits for it; with a check left, once the check passed. A JSON answer's row is
      // written whole with its charge.
      const unwritten = {
        claim,
        write,
        written: !quote.stream
          ? undefined
          : confirmed
            ? confirmed.then((passed) => (passed ? write() : undefined))
            : nextTurn().then(write),
      };
      const channelPaid = {
        requestId: seen.requestId,
        route: seen.route,
        paymentId,
        model: model.id,
        scheme: BATCH_SETTLEMENT,
        asset: matched.requirements.asset,
        payer: accepted.payer,
      };
      const verified = () =>
        emit({
          ...channelPaid,
          type: "verified",
          at: Date.now(),
          maxAtomic: matched.signedMaxAtomic,
          verifyMs: seen.verifyMs ?? 0,
        });
      const checkSignature = accepted.checkSignature;
      if (!checkSignature) verified();
      let confirming: Promise<Respond | undefined> | undefined;
      let unconfirmed: ReturnType<typeof setTimeout> | undefined;
      const confirm =
        checkSignature &&
        ((onRefused?: () => void) => {
          clearTimeout(unconfirmed);
          confirming ??= (async () => {
            const checkStartedAt = performance.now();
            const bad = await checkSignature(onRefused).catch((error: unknown) => {
              confirmedAs(false);
              throw error;
            });
            seen.verifyMs = (seen.verifyMs ?? 0) + (performance.now() - checkStartedAt);
            confirmedAs(bad === undefined);
            if (bad) return refuseChannelPayment(bad);
            verified();
            return undefined;
          })();
          return confirming;
        });
      if (confirm) {
        // A caller that never confirms never gets the request served: past its time bound it fails unserved.
        unconfirmed = setTimeout(() => confirmedAs(false), quote.timeBoundMs);
        unconfirmed.unref();
      }
      const tokenizer = model.tokenizer ?? model.id;
      return {
        action: "serve",
        quote,
        ...(confirm ? { confirm } : {}),
        session: tracked(
          createBillingSession({
            quote,
            paymentId,
            stopping: stopping.signal,
            unwritten,
            ...(confirmed ? { confirmed } : {}),
            payer: accepted.payer,
            payload: payment,
            requirements: matched.requirements as PaymentRequirements,
            signedMaxAtomic: matched.signedMaxAtomic,
            ledger,
            facilitator,
            countTokens: (text) => countTokens(text, tokenizer),
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
        ),
      };
    }

    const admitted = await admitMatchedPayment({
      payment,
      offers,
      matched,
      timeBoundMs: quote.timeBoundMs,
      maxAtomic: quote.maxAtomic,
      model: model.id,
      route: seen.route,
      requestId: seen.requestId,
      ...admission,
      logger: log,
    });
    seen.verifyMs = admitted.verifyMs;
    if (!admitted.admitted) return answerRefusal(admitted.refusal);
    const paid = {
      requestId: seen.requestId,
      route: seen.route,
      paymentId: admitted.paymentId,
      model: model.id,
      scheme: admitted.requirements.scheme,
      asset: admitted.requirements.asset,
      payer: admitted.payer,
    };
    emit({
      ...paid,
      type: "verified",
      at: Date.now(),
      maxAtomic: admitted.maxAtomic,
      verifyMs: admitted.verifyMs,
    });

    const tokenizer = model.tokenizer ?? model.id;
    return {
      action: "serve",
      quote,
      session: tracked(
        createBillingSession({
          quote,
          paymentId: admitted.paymentId,
          stopping: stopping.signal,
          payer: admitted.payer,
          payload: payment,
          requirements: admitted.requirements,
          signedMaxAtomic: admitted.signedMaxAtomic,
          ledger,
          facilitator,
          countTokens: (text) => countTokens(text, tokenizer),
          logger: log,
          settleTimeoutMs,
          heartbeatMs,
          receipts: receiptSigner && {
            signer: receiptSigner,
            resourceUrl: resourceUrlOf(request.url),
            route: seen.route,
            nonce: admitted.nonce,
          },
          event: paid,
          startedAt: seen.startedAt,
          emit,
        }),
      ),
    };
  }

  // Work priced elsewhere (a paid MCP tool) is admitted, settled or failed here; its listeners hear it
  // as a route's, so the metrics count what the ledger holds.
  const admittedWork = new Map<
    number,
    { paid: PaidIdentity; payload: PaymentPayload; requirements: PaymentRequirements }
  >();

  async function admit(request: PaymentAdmissionRequest): Promise<AdmitPaymentReturnType> {
    const requestId = request.requestId ?? requestIdOf(undefined);
    const route = routeOf(request.route);
    const admitted = await runWithRequestId(requestId, () =>
      admitPayment({ ...request, requestId, ...admission, logger }),
    );
    const base = { requestId, route, at: Date.now(), model: request.model };
    if (!admitted.admitted) {
      const { refusal } = admitted;
      const scheme = request.payment.accepted?.scheme;
      const status =
        refusal.kind === "payment_required" ? 402 : errorAnswer(refusal.code, refusal.message).status;
      if (status === 409 && scheme)
        emit({
          ...base,
          type: "replayed",
          status: 409,
          scheme,
          paymentStatus: (refusal.kind === "error" && refusal.paymentStatus) || "",
        });
      else
        emit({
          ...base,
          type: "refused",
          status,
          reason:
            refusal.kind === "payment_required"
              ? (refusal.error ?? "payment_required").split(":")[0]!
              : refusal.code,
          scheme,
          verifyMs: admitted.verifyMs,
        });
      return admitted;
    }
    const paid: PaidIdentity = {
      requestId,
      route,
      paymentId: admitted.paymentId,
      model: request.model,
      scheme: admitted.requirements.scheme,
      asset: admitted.requirements.asset,
      payer: admitted.payer,
    };
    admittedWork.set(admitted.paymentId, {
      paid,
      payload: request.payment,
      requirements: admitted.requirements,
    });
    emit({
      ...paid,
      type: "verified",
      at: Date.now(),
      maxAtomic: admitted.maxAtomic,
      verifyMs: admitted.verifyMs,
    });
    return admitted;
  }

  function settle(charge: SettlePaidWork): Promise<ChargeOutcome> {
    const paid = admittedWork.get(charge.paymentId)?.paid;
    admittedWork.delete(charge.paymentId);
    let settleStartedAt = 0;
    const settling = () =>
      settleCharge({
        ...charge,
        ledger,
        facilitator,
        logger,
        settleTimeoutMs,
        onMetered: () => {
          settleStartedAt = performance.now();
          if (paid)
            emit({
              ...paid,
              type: "metered",
              at: Date.now(),
              usage: charge.usage.units,
              chargeAtomic: charge.chargeAtomic,
            });
        },
        onOutcome: (outcome) => {
          if (!paid) return;
          const settleMs = performance.now() - settleStartedAt;
          if (outcome.kind === "settled")
            emit({
              ...paid,
              type: "settled",
              at: Date.now(),
              chargeAtomic: charge.chargeAtomic,
              transaction: outcome.settlement.transaction,
              settleMs,
            });
          else
            emit({
              ...paid,
              type: "debt",
              at: Date.now(),
              chargeAtomic: charge.chargeAtomic,
              reason: outcome.reason,
              settleMs,
            });
        },
      });
    return paid ? runWithRequestId(paid.requestId, settling) : settling();
  }

  async function fail(paymentId: number, reason: string): Promise<void> {
    const work = admittedWork.get(paymentId);
    admittedWork.delete(paymentId);
    await ledger.markFailed(paymentId, reason);
    if (work)
      await releaseDroppedPayment({
        facilitator,
        payload: work.payload,
        requirements: work.requirements,
        logger,
      });
    if (work) emit({ ...work.paid, type: "failed", at: Date.now(), reason, status: 500 });
  }

  function paymentRequired({ model, route, maxAtomic }: PaymentRequiredWork): void {
    emit({
      requestId: requestIdOf(undefined),
      route: routeOf(route),
      at: Date.now(),
      type: "quoted",
      model,
      status: 402,
      maxAtomic: maxAtomic?.toString(),
    });
  }

  const whenSettled = async () => {
    await Promise.all([...open]);
  };

  return {
    terms,
    models,
    channels,
    schemes: schemes ?? DEFAULT_SCHEME_ORDER,
    receiptSigner: receiptSigner?.address,
    ledger,
    begin,
    admit,
    settle,
    fail,
    paymentRequired,
    whenSettled,
    stopReadingOn: () => stopping.abort(),
  };
}

/** A paid request's identity in its billing events. */
type PaidIdentity = Omit<Extract<BillingEvent, { type: "failed" }>, "type" | "at" | "reason" | "status">;

/** The route of work priced elsewhere as events name it: an http(s) address's path, another address as it is. */
function routeOf(resource: string): string {
  return /^https?:\/\//i.test(resource) ? pathOf(resource) : resource;
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

type Respond = {
  action: "respond";
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
};

type Answer =
  | Respond
  | {
      action: "serve";
      quote: RequestQuote;
      session: BillingSession;
      confirm?: (onRefused?: () => void) => Promise<Respond | undefined>;
    };

/**
 * The path of a request URL as routers match it: percent-escapes decoded (`/v1/chat/%63ompletions` is the
 * chat route) and dot segments resolved. It names the route in metrics and ledger rows, so the spellings of
 * one route are one name, not one Prometheus series each. A URL that does not parse (an odd Host header)
 * gives the path after its authority, never the Host a client wrote.
 */
function pathOf(url: string): string {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    const authority = url.indexOf("://");
    const start = url.indexOf("/", authority < 0 ? 0 : authority + 3);
    try {
      pathname = start < 0 ? "/" : new URL(url.slice(start), "http://localhost").pathname;
    } catch {
      pathname = "/";
    }
  }
  try {
    return decodeURI(pathname);
  } catch {
    return pathname;
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

/**
 * The terms less `erc20ApprovalGasSponsoring` when the facilitator cannot relay a payment's signed
 * `approve` before it is served (a remote one other than `tollgate facilitator`): relayed only at
 * settle, after serving, its funded gas could be spent on the approve's nonce and the request would be
 * served free. Such payments are then refused (approve Permit2 first), and the 402s do not offer it.
 */
function withServableSponsoring(
  terms: BillingTerms,
  facilitator: FacilitatorLike,
  logger: Logger,
): BillingTerms {
  if (facilitator.relaySponsoredApproval || !terms.gasSponsoring?.includes("erc20ApprovalGasSponsoring"))
    return terms;
  logger.warn(
    "erc20ApprovalGasSponsoring is not offered: this facilitator relays a buyer's signed approve only when it settles, after the request is served, so a buyer could spend the gas it funds and be served free; buyers approve Permit2 themselves (tollgate facilitator relays before serving)",
  );
  return {
    ...terms,
    gasSponsoring: terms.gasSponsoring.filter((extension) => extension !== "erc20ApprovalGasSponsoring"),
  };
}
