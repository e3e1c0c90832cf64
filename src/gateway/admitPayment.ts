import type { PaymentRequirements } from "@x402/core/types";
import type { Logger, TollgateErrorCode } from "../errors/index.js";
import { sponsoredApprovalOf } from "../facilitator/index.js";
import { MAX_CLOCK_SKEW_MS, type PaymentLedger } from "../ledger/index.js";
import { authorizationKey, type DecodedPaymentPayload, ReasonCode } from "../protocol/index.js";
import { authorizationDeadline } from "./authorizationDeadline.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import { type BillingTerms, matchOffer } from "./paymentOffers.js";
import { releaseDroppedPayment } from "./releaseDroppedPayment.js";

/** One payment for priced work: the offers it may answer, and what the work is. */
export type PaymentAdmissionRequest = {
  payment: DecodedPaymentPayload;
  offers: PaymentRequirements[];
  /** The longest the paid work may run (ms); the authorization must outlive it and the settlement. */
  timeBoundMs: number;
  /** This work's own maximum: an upto payment signed for more is still charged at most this. */
  maxAtomic?: bigint | undefined;
  /** What was paid for, as the ledger records it (a model id, a tool name). */
  model: string;
  /** Where it was paid for (a route path, an MCP tool address). */
  route: string;
  /** The request it came with, as the ledger records it. */
  requestId?: string | undefined;
};

/** Why a payment was not admitted: a fresh 402 with a reason, or an error answer. */
export type PaymentAdmissionRefusal =
  | { kind: "payment_required"; error?: string | undefined }
  | {
      kind: "error";
      code: TollgateErrorCode;
      message: string;
      /** The ledger status of the earlier use, when the payment is a replay. */
      paymentStatus?: string | undefined;
    };

/** The offer a payment answers, or why it answers none this gateway takes. */
export type MatchPaymentReturnType =
  | { ok: true; requirements: PaymentRequirements; signedMaxAtomic: bigint }
  | { ok: false; refusal: PaymentAdmissionRefusal };

export type AdmitPaymentReturnType =
  | {
      admitted: true;
      paymentId: number;
      payer: string;
      nonce: string;
      requirements: PaymentRequirements;
      signedMaxAtomic: bigint;
      /** The most this payment may be charged. */
      maxAtomic: bigint;
      /** How long the facilitator took to verify it (ms). */
      verifyMs: number;
    }
  | {
      admitted: false;
      refusal: PaymentAdmissionRefusal;
      /** How long the facilitator took to verify it (ms), when it got that far. */
      verifyMs?: number | undefined;
    };

export type AdmitPaymentParameters = PaymentAdmissionRequest & {
  terms: BillingTerms;
  ledger: PaymentLedger;
  facilitator: FacilitatorLike;
  settlementMarginSeconds: number;
  verifyTimeoutMs: number;
  readPayerFunds?: ((payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>) | undefined;
  /**
   * The payer's allowance of the asset to Permit2, read from the chain: a Permit2 payment (upto, exact via
   * Permit2) draws on it as on the balance, so the payments in flight must fit in the lesser of the two.
   */
  readPermit2Allowance?: ((payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>) | undefined;
  /** The payer's EIP-2612 nonce on the asset (`nonces(payer)`), read from the chain: whether a permit is still unspent. */
  readPermitNonce?: ((payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>) | undefined;
  /** The chain's latest block time (unix s): when ahead of this host's clock, deadlines are judged by it. */
  readChainSeconds?: (() => Promise<number>) | undefined;
  logger: Logger;
};

/** How far behind the gateway's clock a signer's may be before a refusal names it (s): a request's own latency. */
const SIGNER_CLOCK_TOLERANCE_SECONDS = 5;

/** The 402 reason for a payer that owes (`PaymentLedger.hasOpenDebt`): what it must do to be served again. */
export const PAYER_IN_DEBT = `${ReasonCode.payerInDebt}: an earlier charge of this payer is unpaid (a settlement that failed, or a channel it withdrew from before its charges were claimed); pay it first (restore the balance or Permit2 approval that settlement needs, or deposit the shortfall into that channel)`;

/**
 * Admits a decoded payment: matches it to an offer, checks its sponsored approval and its
 * deadline, refuses a payer in debt and a replay, verifies it with the facilitator (with the
 * payer's balance beside), and claims it once in the ledger, straight into `serving`.
 */
export async function admitPayment(parameters: AdmitPaymentParameters): Promise<AdmitPaymentReturnType> {
  const matched = matchPayment(parameters.payment, parameters.offers, parameters.terms);
  if (!matched.ok) return { admitted: false, refusal: matched.refusal };
  return admitMatchedPayment({ ...parameters, matched });
}

/** The offer a payment answers, refusing a sponsored approval this gateway's facilitator does not sponsor. */
export function matchPayment(
  payment: DecodedPaymentPayload,
  offers: PaymentRequirements[],
  terms: BillingTerms,
): MatchPaymentReturnType {
  const matched = matchOffer(payment, offers);
  if (!matched.ok)
    return {
      ok: false,
      refusal: { kind: "payment_required", error: `${matched.reason}: ${matched.message}` },
    };
  const sponsored = sponsoredApprovalOf(payment);
  if (sponsored && !terms.gasSponsoring?.includes(sponsored.extension)) {
    return {
      ok: false,
      refusal: {
        kind: "payment_required",
        error: `${ReasonCode.gasSponsoringRefused}: this gateway's facilitator does not sponsor ${sponsored.extension}; approve Permit2 on ${matched.requirements.asset} first`,
      },
    };
  }
  return matched;
}

export type AdmitMatchedPaymentParameters = AdmitPaymentParameters & {
  matched: Extract<MatchPaymentReturnType, { ok: true }>;
};

/** `admitPayment` past the match: for a caller that has already matched the payment to its offer. */
export async function admitMatchedPayment(
  parameters: AdmitMatchedPaymentParameters,
): Promise<AdmitPaymentReturnType> {
  const {
    payment,
    matched,
    terms,
    ledger,
    facilitator,
    readPayerFunds,
    readPermit2Allowance,
    readChainSeconds,
    logger,
  } = parameters;
  let verifyMs: number | undefined;
  const paymentRequired = (error?: string): AdmitPaymentReturnType => ({
    admitted: false,
    refusal: { kind: "payment_required", error },
    verifyMs,
  });
  const refuse = (code: TollgateErrorCode, message: string): AdmitPaymentReturnType => ({
    admitted: false,
    refusal: { kind: "error", code, message },
    verifyMs,
  });
  const replayed = (status: string): AdmitPaymentReturnType => ({
    admitted: false,
    refusal: {
      kind: "error",
      code: "TOLLGATE_PAYMENT_REPLAYED",
      message: `this payment authorization was already used (status ${status}); sign a new one`,
      paymentStatus: status,
    },
    verifyMs,
  });

  // The authorization must outlive the work: the longest it may run, plus time to settle.
  const deadline = authorizationDeadline(payment);
  const runSeconds = Math.ceil(parameters.timeBoundMs / 1000);
  const neededSeconds = runSeconds + parameters.settlementMarginSeconds;
  const expiresTooSoon = (nowSeconds: number, clock: string) => {
    const leftSeconds = deadline === undefined ? undefined : deadline - nowSeconds;
    // Clients sign "now + maxTimeoutSeconds": one that did, and left less, signed by a clock behind.
    const behindSeconds = leftSeconds === undefined ? 0 : terms.maxTimeoutSeconds - leftSeconds;
    const advice =
      behindSeconds > SIGNER_CLOCK_TOLERANCE_SECONDS
        ? `If it was signed for the offer's maxTimeoutSeconds (${terms.maxTimeoutSeconds} s), by a clock about ${behindSeconds} s behind ${clock}: set that clock right (NTP); otherwise sign with the offer's maxTimeoutSeconds`
        : `Sign with the offer's maxTimeoutSeconds (${terms.maxTimeoutSeconds})`;
    return paymentRequired(
      `${ReasonCode.authorizationExpiresTooSoon}: the authorization must stay valid at least ${neededSeconds} s from now (this request may run ${runSeconds} s, then settle); by ${clock} it expires in ${leftSeconds === undefined ? "an unknown time" : `${leftSeconds} s`}. ${advice}`,
    );
  };
  const hostSeconds = Math.floor(Date.now() / 1000);
  if (deadline === undefined || deadline < hostSeconds + neededSeconds)
    return expiresTooSoon(hostSeconds, "this gateway's clock");
  const key = authorizationKey(payment);

  const admission = await ledger.admission(key);
  if (admission.inDebt) {
    return paymentRequired(PAYER_IN_DEBT);
  }
  if (admission.existing) return replayed(admission.existing.status);

  let verified: Awaited<ReturnType<FacilitatorLike["verify"]>> | undefined;
  let fundsAtomic: bigint | undefined;
  // Verified and then refused here, or not served: what the facilitator holds for it is given back.
  const dropped = () =>
    releaseDroppedPayment({
      facilitator,
      payload: payment,
      requirements: matched.requirements,
      logger,
      timeoutMs: parameters.verifyTimeoutMs,
    });
  // The payer's payments settled from here on may not show in the funds read below: the claim counts them.
  // The host's clock may run up to MAX_CLOCK_SKEW_MS ahead of the database's, which stamps settlements.
  const fundsReadFromMs = Date.now() - MAX_CLOCK_SKEW_MS;
  let chainSeconds: number | undefined;
  // A Permit2 payment draws on the payer's allowance to Permit2 too; one carrying an EIP-2612 permit on
  // the permit's amount, which it sets the allowance to (a relayed approve approves without bound).
  const permitted = permit2AllowanceOf(payment);
  // The funds are capped by an allowance read from the chain, which a permit settled since resets.
  const allowanceRead = permitted === "read" && readPermit2Allowance !== undefined;
  const verifyStartedAt = performance.now();
  try {
    const asset = matched.requirements.asset as `0x${string}`;
    const funds = readPayerFunds?.(key.payer as `0x${string}`, asset);
    funds?.catch(() => undefined);
    const allowance =
      funds && permitted === "read" ? readPermit2Allowance?.(key.payer as `0x${string}`, asset) : undefined;
    allowance?.catch(() => undefined);
    const chainTime = readChainSeconds?.();
    chainTime?.catch(() => undefined);
    verified = await withTimeout(
      facilitator.verify(payment, matched.requirements),
      parameters.verifyTimeoutMs,
    );
    verifyMs = performance.now() - verifyStartedAt;
    if (verified.isValid && funds) {
      const balanceAtomic = await withTimeout(funds, parameters.verifyTimeoutMs);
      const allowanceAtomic =
        typeof permitted === "bigint"
          ? permitted
          : allowance
            ? await withTimeout(allowance, parameters.verifyTimeoutMs)
            : undefined;
      fundsAtomic =
        allowanceAtomic !== undefined && allowanceAtomic < balanceAtomic ? allowanceAtomic : balanceAtomic;
    }
    if (verified.isValid && chainTime)
      chainSeconds = await withTimeout(chainTime, parameters.verifyTimeoutMs);
  } catch (error) {
    logger.warn({ error: String(error) }, "facilitator unavailable during verify");
    // Verified, and the payer's funds or the chain's time could not be read.
    if (verified?.isValid) await dropped();
    return refuse(
      "TOLLGATE_FACILITATOR_UNAVAILABLE",
      "the payment facilitator or chain is unreachable; no inference was run",
    );
  }
  if (!verified.isValid) {
    const reason = verified.invalidReason ?? "invalid_payment";
    // Tollgate's own reasons carry the facilitator's words (e.g. a sponsorship limit and what to do);
    // x402's stay bare, as clients match them whole.
    const words = reason.startsWith("tollgate_") && !reason.includes(":") && verified.invalidMessage;
    return paymentRequired(words ? `${reason}: ${verified.invalidMessage}` : reason);
  }
  // A slow verify spends the authorization's time: it must still outlive the work from now, not from
  // when the request came (served, then its settlement too late for its deadline: never paid).
  const hostSecondsAfter = Math.floor(Date.now() / 1000);
  if (deadline < hostSecondsAfter + neededSeconds) {
    await dropped();
    return expiresTooSoon(hostSecondsAfter, "this gateway's clock");
  }
  // The chain settles it: a host whose clock runs behind the chain's blocks would let an authorization
  // through that expires, by the chain, before its work is settled (served, then never paid). The chain's
  // time was read as verify began: the wait since is added to it.
  const verifySeconds = Math.floor((performance.now() - verifyStartedAt) / 1000);
  if (chainSeconds !== undefined && deadline < chainSeconds + verifySeconds + neededSeconds) {
    await dropped();
    return expiresTooSoon(chainSeconds + verifySeconds, "the chain's clock");
  }

  const maxAtomic =
    matched.requirements.scheme === "upto"
      ? capOf(parameters.maxAtomic, matched.signedMaxAtomic)
      : matched.signedMaxAtomic;
  const claimInput = {
    ...key,
    scheme: matched.requirements.scheme,
    model: parameters.model,
    route: parameters.route,
    requestId: parameters.requestId,
    asset: matched.requirements.asset,
    payTo: matched.requirements.payTo,
    // What this payment may cost: its own quote caps it, whatever larger amount was signed.
    maxAtomic,
    paymentPayload: payment,
    paymentRequirements: matched.requirements,
  };
  let claim =
    fundsAtomic === undefined
      ? await ledger.claim(claimInput, { serving: true })
      : await ledger.claimWithinFunds(claimInput, fundsAtomic, {
          serving: true,
          settledSinceMs: fundsReadFromMs,
          allowanceRead,
        });
  // Refused only for charges settled around the funds read, which the read may already show (and for a
  // permit settled since the allowance read, which set that allowance anew): read again, now that they are
  // booked, and count only what settles after this read.
  if (!claim.claimed && !claim.existing && !claim.permitInFlight && claim.settledSinceAtomic > 0n) {
    const readAgainFromMs = claim.checkedAtMs;
    const fresh = await readFunds(
      parameters,
      payment,
      key.payer as `0x${string}`,
      matched.requirements.asset,
    ).catch(() => undefined);
    if (fresh !== undefined)
      claim = await ledger.claimWithinFunds(claimInput, fresh, {
        serving: true,
        settledSinceMs: readAgainFromMs,
        allowanceRead,
      });
  }
  // A replay is not released: the payment it repeats, the same authorization, may be being served.
  if (!claim.claimed && claim.existing) return replayed(claim.existing.status);
  if (!claim.claimed) {
    await dropped();
    if (claim.permitInFlight)
      return paymentRequired(
        `${ReasonCode.insufficientFunds}: a payment carrying an EIP-2612 permit is served alone among its payer's (its permit sets the Permit2 allowance the others draw on, and of permits on one token nonce only the first settled counts); retry when this payer's payment in flight has settled`,
      );
    return paymentRequired(
      `${ReasonCode.insufficientFunds}: this payer's payments in flight and its unpaid charges still to be settled already reserve ${claim.reservedAtomic} of the ${claim.fundsAtomic} it can pay (the lesser of its balance and, for a Permit2 payment, its Permit2 allowance; an upto payment signed for more than it may cost reserves all it was signed for, which its settlement needs), and this one may cost ${maxAtomic}; retry when they have settled`,
    );
  }
  // A payment carrying a permit was verified while its permit was unspent; another of its payer's may
  // have spent the permit's nonce (settled) between that verify and this claim. Alone in flight now, it
  // is held to what the chain shows, before it is served.
  let spentPermit: string | undefined;
  try {
    // Settled, it must find all it was signed for, not only its maximum.
    spentPermit = await spentPermitShortfall(
      parameters,
      payment,
      key.payer as `0x${string}`,
      matched.signedMaxAtomic,
    );
  } catch (error) {
    logger.warn({ error: String(error) }, "chain unavailable while checking a payment's EIP-2612 permit");
    await ledger.markFailed(claim.payment.id, `its EIP-2612 permit could not be checked: ${String(error)}`);
    await dropped();
    return refuse(
      "TOLLGATE_FACILITATOR_UNAVAILABLE",
      "the chain could not be read to check the payment's EIP-2612 permit; no inference was run and nothing was charged: retry with a new payment",
    );
  }
  if (spentPermit !== undefined) {
    await ledger.markFailed(claim.payment.id, spentPermit);
    await dropped();
    return paymentRequired(`${ReasonCode.insufficientFunds}: ${spentPermit}`);
  }
  // A signed approve the facilitator would relay at settle, after serving, is relayed now: a payer that
  // spends the gas funded for it on the approve's nonce is refused, not served for free. A permit's
  // sponsored use is taken now, atomically: payments of one payer sent at once (to any seller on the
  // facilitator) get no more sponsored approvals than its limit.
  const sponsoredExtension = sponsoredApprovalOf(payment)?.extension;
  if (facilitator.relaySponsoredApproval && sponsoredExtension !== undefined) {
    let unrelayed: string | undefined;
    // Bounded like verify: a chain that hangs holds neither the buyer's request nor its admission. A relay
    // given up on sends no gas after that; one whose gas went out may still land, and only sets the
    // allowance the payer's next payment (a new authorization) draws on, served and charged as any other.
    const givenUp = new AbortController();
    try {
      unrelayed = await withTimeout(
        facilitator.relaySponsoredApproval(payment, matched.requirements, { signal: givenUp.signal }),
        parameters.verifyTimeoutMs,
      );
    } catch (error) {
      givenUp.abort();
      // Unreachable (or its chain is), or too slow: not a refusal of the sponsorship, a moment to wait. The
      // row stays, failed, as its authorization may not be claimed twice: the buyer signs again.
      logger.warn({ error: String(error) }, "facilitator unavailable while relaying a sponsored approval");
      await ledger.markFailed(claim.payment.id, `sponsored approval not relayed: ${String(error)}`);
      await dropped();
      return refuse(
        "TOLLGATE_FACILITATOR_UNAVAILABLE",
        "the payment facilitator could not relay the payment's signed approve for now; no inference was run and nothing was charged: retry with a new payment",
      );
    }
    if (unrelayed !== undefined) {
      await ledger.markFailed(claim.payment.id, `sponsored approval not relayed: ${unrelayed}`);
      await dropped();
      return paymentRequired(`${ReasonCode.gasSponsoringRefused}: ${unrelayed}`);
    }
    // The relay waits for two transactions (funding, approve): on a slow chain the authorization may no
    // longer outlive the request and its settlement, which would then be served and never paid.
    const relayedAtSeconds = Math.floor(Date.now() / 1000);
    if (sponsoredExtension === "erc20ApprovalGasSponsoring" && deadline < relayedAtSeconds + neededSeconds) {
      await ledger.markFailed(claim.payment.id, "authorization too short once its approve was relayed");
      await dropped();
      return paymentRequired(
        `${ReasonCode.authorizationExpiresTooSoon}: the authorization must stay valid at least ${neededSeconds} s from now (this request may run ${runSeconds} s, then settle); verifying it and relaying its signed approve took ${relayedAtSeconds - hostSeconds} s, and it now expires in ${deadline - relayedAtSeconds} s. The approve stands: sign a new payment (with the offer's maxTimeoutSeconds, ${terms.maxTimeoutSeconds} s)`,
      );
    }
  }
  return {
    admitted: true,
    paymentId: claim.payment.id,
    payer: key.payer,
    nonce: key.nonce,
    requirements: matched.requirements,
    signedMaxAtomic: matched.signedMaxAtomic,
    maxAtomic,
    verifyMs,
  };
}

/** What the payer can pay now: the lesser of its balance and, for a Permit2 payment, its Permit2 allowance. */
async function readFunds(
  parameters: AdmitPaymentParameters,
  payment: DecodedPaymentPayload,
  payer: `0x${string}`,
  asset: string,
): Promise<bigint | undefined> {
  if (!parameters.readPayerFunds) return undefined;
  const permitted = permit2AllowanceOf(payment);
  const [balanceAtomic, allowanceAtomic] = await withTimeout(
    Promise.all([
      parameters.readPayerFunds(payer, asset as `0x${string}`),
      typeof permitted === "bigint"
        ? permitted
        : permitted === "read"
          ? parameters.readPermit2Allowance?.(payer, asset as `0x${string}`)
          : undefined,
    ]),
    parameters.verifyTimeoutMs,
  );
  return allowanceAtomic !== undefined && allowanceAtomic < balanceAtomic ? allowanceAtomic : balanceAtomic;
}

/**
 * Why a payment carrying an EIP-2612 permit cannot be paid, if it cannot: its permit's nonce is spent
 * (the token's nonce moved past it), so the permit will not set the Permit2 allowance at settle, and the
 * allowance or balance the chain shows is below what the payment was signed for (all of which its
 * settlement needs). Undefined without the chain.
 */
async function spentPermitShortfall(
  parameters: AdmitMatchedPaymentParameters,
  payment: DecodedPaymentPayload,
  payer: `0x${string}`,
  signedAtomic: bigint,
): Promise<string | undefined> {
  const { readPermitNonce, readPayerFunds, readPermit2Allowance, verifyTimeoutMs } = parameters;
  const sponsored = sponsoredApprovalOf(payment);
  if (sponsored?.extension !== "eip2612GasSponsoring" || !readPermitNonce || !readPayerFunds)
    return undefined;
  const asset = parameters.matched.requirements.asset as `0x${string}`;
  const permitNonce = sponsored.info.nonce;
  const tokenNonce = await withTimeout(readPermitNonce(payer, asset), verifyTimeoutMs);
  if (/^\d{1,78}$/.test(permitNonce) && BigInt(permitNonce) === tokenNonce) return undefined;
  const [balanceAtomic, allowanceAtomic] = await withTimeout(
    Promise.all([readPayerFunds(payer, asset), readPermit2Allowance?.(payer, asset)]),
    verifyTimeoutMs,
  );
  const fundsAtomic =
    allowanceAtomic !== undefined && allowanceAtomic < balanceAtomic ? allowanceAtomic : balanceAtomic;
  if (fundsAtomic >= signedAtomic) return undefined;
  return `its EIP-2612 permit on token nonce ${permitNonce} was spent by another payment of this payer (the token's nonce is now ${tokenNonce}), and what that leaves it to pay with, ${fundsAtomic} (the lesser of its balance and its Permit2 allowance), is less than this payment was signed for, ${signedAtomic} (all of which its settlement needs); no inference was run and nothing was charged: sign a new payment`;
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

/**
 * What a payment's Permit2 allowance is, for the funds it may draw on: "read" (the chain's, for a Permit2
 * payment), its EIP-2612 permit's amount, or undefined (no Permit2: an EIP-3009 transfer; or a relayed
 * `approve`, which approves without bound).
 */
function permit2AllowanceOf(payment: DecodedPaymentPayload): "read" | bigint | undefined {
  const inner = payment.payload as { permit2Authorization?: unknown };
  if (inner.permit2Authorization === undefined) return undefined;
  const sponsored = sponsoredApprovalOf(payment);
  if (sponsored?.extension === "erc20ApprovalGasSponsoring") return undefined;
  if (sponsored?.extension === "eip2612GasSponsoring")
    return /^\d{1,78}$/.test(sponsored.info.amount) ? BigInt(sponsored.info.amount) : 0n;
  return "read";
}
