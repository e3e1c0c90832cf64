import { randomBytes } from "node:crypto";
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import { type Address, getAddress, type Hex, type LocalAccount, type PublicClient } from "viem";
import { chainIdOf } from "../../chain/index.js";
import type { Logger } from "../../errors/index.js";
import {
  type ChannelLedger,
  type ChannelRecord,
  type ClaimPaymentInput,
  channelRowWrite,
  type PayerQuotas,
} from "../../ledger/index.js";
import { ReasonCode } from "../../protocol/index.js";
import { PAYER_IN_DEBT } from "../admitPayment.js";
import type { BillingEvent } from "../BillingEvent.js";
import type { FacilitatorLike } from "../facilitatorLike.js";
import type { BillingTerms } from "../paymentOffers.js";
import type { RequestQuote } from "../quoteRequest.js";
import { retryLedgerWrite } from "../retryLedgerWrite.js";
import type { ChargeOutcome, ChargeUsage } from "../settleCharge.js";
import { channelIdOf } from "./channelAuthorizer.js";
import { type ChannelPayload, channelPayloadSchema, largerOf } from "./channelPayload.js";
import { ChannelReason } from "./channelReasons.js";
import { onchainStateTrustMs } from "./channelTiming.js";
import { createVoucherVerifier } from "./createVoucherVerifier.js";
import { type OnchainChannelState, readChannelState } from "./readChannelState.js";

/** How often a voucher above a channel's known balance may have the balance read from the chain again (ms). */
const BALANCE_RECHECK_MS = 2_000;

const DAY_MS = 86_400_000;

/** Channel ids kept by config (about 400 bytes each). */
const CHANNEL_IDS_KEPT = 4096;

/** How long a channel that sent a badly signed voucher has its vouchers checked before the backend starts (ms). */
const OVERLAP_BAR_MS = 10 * 60_000;

/** The x402 scheme name of payment channels. */
export const BATCH_SETTLEMENT = "batch-settlement";

export type CreateChannelBillingParameters = {
  terms: BillingTerms;
  channels: ChannelLedger;
  facilitator: FacilitatorLike;
  chain: PublicClient;
  /** Signs claims and refunds; its address is every channel's `receiverAuthorizer`. */
  receiverAuthorizer: LocalAccount;
  withdrawDelaySeconds: number;
  /** The deposit a new channel is asked for (`extra.minDeposit`), at least one request's maximum. */
  minDepositAtomic: bigint;
  /**
   * Deposits below `minDepositAtomic` (a buyer's caps can size one so) one payer may have relayed in
   * 24 h, counted in `quotas`; default 8. Each is a transaction the seller pays.
   */
  smallDepositsPerPayerPerDay?: number;
  /** Where each payer's small deposits are counted: the ledger's, so replicas and restarts share the count. */
  quotas: PayerQuotas;
  /** How long the channel's on-chain state read last is trusted; default a third of the withdraw delay, 30 s – 5 min. */
  onchainStateTtlMs?: number;
  /** A reservation outlives its request's time bound by this much (ms); default 30 s. */
  reservationMarginMs?: number;
  /**
   * Whether the payer owes (`PaymentLedger.hasOpenDebt`): asked before a deposit is settled, so a payer
   * that owes is refused before its deposit moves, unless the deposit goes into the channel it owes on.
   */
  payerOwes?: (payer: string) => Promise<boolean>;
  logger: Logger;
  /** Told of every deposit settled. */
  emit?: (event: BillingEvent) => void;
};

/** A voucher accepted for one request: its reservation on the channel, charged or released once. */
export type ChannelReservation = {
  channelId: Hex;
  /** The cumulative amount the voucher signs: charged so far + this request's maximum. */
  voucherMaxAtomic: bigint;
  /** The deposit transaction made for this request, if it carried one. */
  depositTransaction?: string;
  /**
   * Adds the charge to the channel and finishes the payment row, atomically; `unwritten` is the
   * claim of a row not written while the request was served, inserted whole then. When they cannot
   * be written, the channel is freed and the error thrown: nothing is charged.
   */
  charge(
    paymentId: number,
    usage: ChargeUsage,
    chargeAtomic: bigint,
    unwritten?: ClaimPaymentInput,
  ): Promise<ChargeOutcome>;
  /** Frees the channel for the next request without charging (nothing was delivered). */
  release(): Promise<void>;
};

/** Why a channel payment was not accepted, or the reservation it won. */
export type ChannelAcceptance =
  | {
      ok: true;
      payer: string;
      nonce: string;
      reservation: ChannelReservation;
      /**
       * Present when the voucher's signature was left to check (`deferSignature`): checks it, and on a bad
       * one frees the channel and says why. Nothing may be forwarded or charged before it returned undefined.
       */
      checkSignature?: (
        onBad?: () => void,
      ) => Promise<Extract<ChannelAcceptance, { kind: "payment" }> | undefined>;
    }
  | { ok: false; kind: "malformed"; message: string; field: string | null }
  | { ok: false; kind: "unavailable"; message: string }
  | { ok: false; kind: "payment"; reason: string; message: string; channel?: ChannelRecord };

/** The on-chain and charged state of a channel, as `@x402/evm` reads it in `extra.channelState`. */
export function channelStateExtra(channel: ChannelRecord) {
  return {
    channelId: channel.channelId,
    balance: channel.balanceAtomic.toString(),
    totalClaimed: channel.totalClaimedAtomic.toString(),
    withdrawRequestedAt: channel.withdrawRequestedAt,
    refundNonce: channel.refundNonce.toString(),
    chargedCumulativeAmount: channel.chargedAtomic.toString(),
  };
}

/** Seller side of `batch-settlement`: offers, voucher acceptance with local checks, and charging. */
export function createChannelBilling(parameters: CreateChannelBillingParameters) {
  const { terms, channels, facilitator, chain, receiverAuthorizer, logger } = parameters;
  const chainId = chainIdOf(terms.network);
  const withdrawDelay = parameters.withdrawDelaySeconds;
  const ttlMs = parameters.onchainStateTtlMs ?? onchainStateTrustMs(withdrawDelay);
  const marginMs = parameters.reservationMarginMs ?? 30_000;
  const settlement = getAddress(BATCH_SETTLEMENT_ADDRESS) as Address;
  const vouchers = createVoucherVerifier({ chainId });
  const smallDepositsPerDay = parameters.smallDepositsPerPayerPerDay ?? 8;
  // Each payer's deposits below the minimum, last 24 h: sized to one request each, they would have the
  // seller relay a deposit (~100k gas) per request.
  const smallDepositScope = (payer: string) => ({
    kind: "small_deposit" as const,
    network: terms.network,
    payer,
    sinceMs: Date.now() - DAY_MS,
  });
  // A buyer sends its channel's config with every voucher; hashing it (EIP-712) costs more than checking
  // the voucher's signature, so the ids of the configs seen last are kept.
  const channelIds = new Map<string, string>();
  const channelIdFor = (config: ChannelPayload["channelConfig"]) => {
    const key = [
      config.payer,
      config.payerAuthorizer,
      config.receiver,
      config.receiverAuthorizer,
      config.token,
      config.withdrawDelay,
      config.salt,
    ].join("|");
    let id = channelIds.get(key);
    if (id === undefined) {
      id = channelIdOf(config, terms.network);
      if (channelIds.size >= CHANNEL_IDS_KEPT) channelIds.delete(channelIds.keys().next().value as string);
      channelIds.set(key, id);
    }
    return id;
  };

  /** The batch-settlement offer for a request whose maximum is `amountAtomic`. */
  const offer = (amountAtomic: bigint, extra: Record<string, unknown> = {}): PaymentRequirements => ({
    scheme: BATCH_SETTLEMENT,
    network: terms.network,
    asset: terms.asset,
    amount: amountAtomic.toString(),
    payTo: terms.payTo,
    maxTimeoutSeconds: terms.maxTimeoutSeconds,
    extra: {
      ...terms.assetDomain,
      receiverAuthorizer: receiverAuthorizer.address,
      withdrawDelay,
      minDeposit: (amountAtomic > parameters.minDepositAtomic
        ? amountAtomic
        : parameters.minDepositAtomic
      ).toString(),
      ...extra,
    },
  });

  type ChannelProblem = { reason: string; message: string };

  /** Why a payload's channel is not one this gateway is paid through (its signature aside), or undefined. */
  const checkConfig = (payload: ChannelPayload): ChannelProblem | undefined => {
    const config = payload.channelConfig;
    const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
    if (!same(config.receiver, terms.payTo) || !same(config.token, terms.asset))
      return {
        reason: ChannelReason.configMismatch,
        message: `the channel must pay ${terms.payTo} in ${terms.asset}`,
      };
    if (!same(config.receiverAuthorizer, receiverAuthorizer.address) || config.withdrawDelay < withdrawDelay)
      return {
        reason: ChannelReason.configMismatch,
        message: `the channel's receiverAuthorizer must be ${receiverAuthorizer.address} and its withdrawDelay at least ${withdrawDelay} s (from this gateway's offer)`,
      };
    if (channelIdFor(config) !== payload.voucher.channelId.toLowerCase())
      return {
        reason: ChannelReason.channelIdMismatch,
        message: "the voucher's channelId is not the id of its channelConfig",
      };
    if (/^0x0{40}$/i.test(config.payerAuthorizer))
      return {
        reason: ChannelReason.voucherSignature,
        message: "this gateway checks vouchers locally: the channel needs a payerAuthorizer address",
      };
    return undefined;
  };

  /** Why a payload's voucher is not signed by its channel's payerAuthorizer, or undefined when it is. */
  const checkSignature = (payload: ChannelPayload): ChannelProblem | undefined => {
    const config = payload.channelConfig;
    const signed = vouchers.isSigned(
      config.payerAuthorizer,
      payload.voucher.channelId,
      payload.voucher.maxClaimableAmount,
      payload.voucher.signature,
    );
    if (signed) return undefined;
    // A channel whose vouchers come badly signed is no longer served before its signatures are checked.
    barOverlap(payload.voucher.channelId.toLowerCase());
    return {
      reason: ChannelReason.voucherSignature,
      message: `the voucher is not signed by the channel's payerAuthorizer ${config.payerAuthorizer} in the form the contract takes (65 bytes, v 27 or 28, s in the lower half)`,
    };
  };

  /** Why a payload's channel is not one this gateway is paid through, or undefined when it is. */
  const checkChannel = async (payload: ChannelPayload): Promise<ChannelProblem | undefined> =>
    checkConfig(payload) ?? checkSignature(payload);

  // Channels whose vouchers came with a bad signature, and until when (ms) their next vouchers are checked
  // before their backend request starts rather than beside it: a stranger who knows a channel's state can
  // start one backend request per channel per OVERLAP_BAR_MS this way (cut off at once, nothing delivered).
  const overlapBarred = new Map<string, number>();
  const barOverlap = (channelId: string) => {
    overlapBarred.delete(channelId);
    if (overlapBarred.size >= CHANNEL_IDS_KEPT) {
      const now = Date.now();
      for (const [id, until] of overlapBarred) if (until <= now) overlapBarred.delete(id);
    }
    // Full of live bars (many channels sent bad signatures): no channel overlaps until some expire.
    if (overlapBarred.size >= CHANNEL_IDS_KEPT)
      overlapBarred.delete(overlapBarred.keys().next().value as string);
    overlapBarred.set(channelId, Date.now() + OVERLAP_BAR_MS);
  };
  // Channels with a voucher whose signature is being checked beside its backend: one at a time per
  // channel, so that a burst of forged vouchers gets one overlap, not one each.
  const overlapping = new Set<string>();
  const mayOverlap = (channelId: string) =>
    overlapBarred.size < CHANNEL_IDS_KEPT &&
    !overlapping.has(channelId) &&
    (overlapBarred.get(channelId) ?? 0) <= Date.now();

  /** The stored channel merged with a fresh on-chain read, or a new record for an unknown channel. */
  const withOnchain = (
    current: ChannelRecord | undefined,
    payload: ChannelPayload,
    onchain: OnchainChannelState | undefined,
    now: number,
  ): ChannelRecord | undefined => {
    if (!current && !onchain) return undefined;
    const base: ChannelRecord = current ?? {
      channelId: payload.voucher.channelId.toLowerCase() as Hex,
      network: terms.network,
      payer: payload.channelConfig.payer.toLowerCase(),
      receiver: terms.payTo,
      token: terms.asset,
      config: { ...payload.channelConfig },
      chargedAtomic: 0n,
      signedMaxAtomic: 0n,
      signature: "0x",
      balanceAtomic: 0n,
      totalClaimedAtomic: 0n,
      withdrawRequestedAt: 0,
      refundNonce: 0n,
      onchainSyncedAt: null,
      settledAtomic: 0n,
      depositedAtomic: 0n,
      refundedAtomic: 0n,
      lastRequestAt: 0,
      pending: undefined,
    };
    if (!onchain) return base;
    // What the chain says was claimed was charged: never accept a voucher below it.
    const chargedAtomic = largerOf(onchain.totalClaimedAtomic, base.chargedAtomic);
    return {
      ...base,
      chargedAtomic,
      signedMaxAtomic: largerOf(base.signedMaxAtomic, chargedAtomic),
      balanceAtomic: onchain.balanceAtomic,
      totalClaimedAtomic: onchain.totalClaimedAtomic,
      withdrawRequestedAt: onchain.withdrawRequestedAt,
      refundNonce: onchain.refundNonce,
      onchainSyncedAt: now,
    };
  };

  // When each channel's balance was last re-read for a voucher above it (the attempt, failed or not), so
  // that concurrent or repeated vouchers above the balance cost one chain read per channel per interval.
  const balanceRechecks = new Map<string, number>();
  const takeBalanceRecheck = (channelId: string): boolean => {
    const now = Date.now();
    if (now - (balanceRechecks.get(channelId) ?? 0) < BALANCE_RECHECK_MS) return false;
    balanceRechecks.delete(channelId);
    if (balanceRechecks.size >= CHANNEL_IDS_KEPT)
      balanceRechecks.delete(balanceRechecks.keys().next().value as string);
    balanceRechecks.set(channelId, now);
    return true;
  };

  const isFresh = (channel: ChannelRecord | undefined, now: number) =>
    channel?.onchainSyncedAt !== null &&
    channel !== undefined &&
    now - (channel.onchainSyncedAt ?? 0) <= ttlMs;

  const release = (channelId: Hex, pendingId: string) =>
    channels.update(channelId, (current) =>
      current?.pending?.id === pendingId
        ? { next: { ...current, pending: undefined }, result: undefined }
        : { result: undefined },
    );

  async function accept({
    payment,
    requirements,
    quote,
    deferSignature = false,
  }: {
    payment: PaymentPayload;
    requirements: PaymentRequirements;
    quote: RequestQuote;
    /**
     * Leave a voucher's signature to `checkSignature`, called once the backend request is on its way,
     * so that the check overlaps the backend's first bytes. Not for a deposit (checked whole before it
     * is settled), nor for a channel that sent a badly signed voucher in the last 10 minutes.
     */
    deferSignature?: boolean;
  }): Promise<ChannelAcceptance> {
    const parsed = channelPayloadSchema.safeParse(payment.payload);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue?.path.length ? `payload.${issue.path.join(".")}` : "payload";
      return { ok: false, kind: "malformed", message: `${field}: ${issue?.message ?? "invalid"}`, field };
    }
    const payload = parsed.data;
    if (payload.type === "refund")
      return {
        ok: false,
        kind: "payment",
        reason: ChannelReason.refundAmountInvalid,
        message: "a refund is asked for at GET /v1/channels/refund, not with an inference request",
      };
    const channelId = payload.voucher.channelId.toLowerCase() as Hex;
    let deferred = deferSignature && payload.type === "voucher" && mayOverlap(channelId);
    const problem = deferred ? checkConfig(payload) : await checkChannel(payload);
    if (problem) return { ok: false, kind: "payment", ...problem };
    if (deferred) overlapping.add(channelId);
    const requestMaxAtomic = BigInt(requirements.amount);
    const depositAtomic = payload.type === "deposit" ? payload.deposit.amount : 0n;
    // The seller's facilitator pays each deposit's gas (~100k): one sized to the next voucher alone
    // would have it send a transaction per request, as upto does, for a channel's sub-cent charges.
    const leastDepositAtomic = largerOf(requestMaxAtomic, parameters.minDepositAtomic);
    const smallDeposit = payload.type === "deposit" && depositAtomic < leastDepositAtomic;
    /** The refusal of a small deposit past its payer's allowance (those made, and those being made). */
    const pastSmallAllowance = (counted: number): ChannelAcceptance => ({
      ok: false,
      kind: "payment",
      reason: ReasonCode.channelDepositTooSmall,
      message: `a deposit of ${depositAtomic} is below this seller's minimum ${leastDepositAtomic} (the offer's extra.minDeposit), and this payer had ${counted} such in the last 24 h (limit ${smallDepositsPerDay}), each a transaction the seller pays for; deposit at least ${leastDepositAtomic}, or straight on chain`,
    });
    if (smallDeposit) {
      const counted = (await parameters.quotas.uses(smallDepositScope(payload.channelConfig.payer))).length;
      if (counted >= smallDepositsPerDay) return pastSmallAllowance(counted);
    }

    const pendingId = randomBytes(16).toString("hex");
    type Reserve =
      | { kind: "reserved"; channel: ChannelRecord }
      | {
          kind: "refused";
          reason: string;
          message: string;
          channel?: ChannelRecord;
          elsewhereAtomic?: bigint;
          aboveLedgerAtomic?: bigint;
        };
    // Whether the ledger has a row of this channel (as the last reservation attempt read it).
    let stored = false;
    const reserve = (onchain: OnchainChannelState | undefined, now: number) =>
      channels
        .update<Reserve | { kind: "stale" }>(channelId, (current) => {
          stored = current !== undefined;
          if (!onchain && !isFresh(current, now)) return { result: { kind: "stale" } };
          const state = withOnchain(current, payload, onchain, now);
          if (!state)
            return {
              result: { kind: "refused", reason: ChannelReason.missingChannel, message: "unknown channel" },
            };
          // A fresh read of a stored channel is kept. A channel the ledger has no row of is written only
          // once it takes a request: anyone can name an unfunded channel of their own per request, and a
          // refused one written would grow the ledger (and every claim round's list) for nothing paid.
          const keep = onchain && current ? state : undefined;
          if (state.pending && state.pending.expiresAt > now)
            return {
              next: keep,
              result: {
                kind: "refused",
                reason: ChannelReason.channelBusy,
                message: "this channel is serving another request; one request at a time per channel",
              },
            };
          if (state.withdrawRequestedAt > 0)
            return {
              next: keep,
              result: {
                kind: "refused",
                reason: ChannelReason.withdrawalPending,
                message: "the payer started a withdrawal from this channel; open a new channel to pay",
              },
            };
          const expectedAtomic = state.chargedAtomic + requestMaxAtomic;
          if (payload.voucher.maxClaimableAmount !== expectedAtomic)
            return {
              next: keep,
              result: {
                kind: "refused",
                reason: ChannelReason.cumulativeMismatch,
                message: `the voucher signs ${payload.voucher.maxClaimableAmount}; this request needs charged ${state.chargedAtomic} + maximum ${requestMaxAtomic} = ${expectedAtomic}`,
                channel: state,
                // A channel this ledger has no record of, whose payer signs (signature checked) above what the
                // chain shows claimed plus this request: charges made through another ledger (a lost data dir,
                // a stray DATABASE_URL) that this one cannot claim. The voucher is not taken as proof of them:
                // a voucher binds no request, so anyone who saw one could spend its room. The operator is told.
                ...(!current && onchain && !deferred && payload.voucher.maxClaimableAmount > expectedAtomic
                  ? { elsewhereAtomic: payload.voucher.maxClaimableAmount - expectedAtomic }
                  : {}),
                // A channel the ledger knows, whose payer signs above its charges plus this request: a payer's
                // client counts charges only from receipts, so it was charged more than this ledger holds (an
                // older copy of the ledger restored, or another ledger that took vouchers). Those charges only
                // the ledger that made them can claim: the operator is told (after the signature is checked).
                ...(current && payload.voucher.maxClaimableAmount > expectedAtomic
                  ? { aboveLedgerAtomic: payload.voucher.maxClaimableAmount - expectedAtomic }
                  : {}),
              },
            };
          if (expectedAtomic > state.balanceAtomic + depositAtomic)
            return {
              next: keep,
              result: {
                kind: "refused",
                reason: ChannelReason.cumulativeExceedsBalance,
                message: `the voucher's ${expectedAtomic} is above the channel's balance ${state.balanceAtomic + depositAtomic}; deposit more`,
                // The channel's state tells the payer how much it holds, so it can size its top-up.
                channel: state,
              },
            };
          const next: ChannelRecord = {
            ...state,
            // A voucher not yet known to be the payer's does not make the channel look busy (idle refunds).
            lastRequestAt: deferred ? state.lastRequestAt : now,
            pending: {
              id: pendingId,
              maxAtomic: expectedAtomic,
              expiresAt: now + quote.timeBoundMs + marginMs,
            },
          };
          return { next, result: { kind: "reserved", channel: next } };
        })
        // A failure may come after the database made the reservation (its answer lost): freed, or the
        // channel would refuse its payer as busy until the reservation expired.
        .catch(async (error: unknown) => {
          await release(channelId, pendingId).catch(() => undefined);
          throw error;
        });
    // Vouchers are checked without a chain call while the channel's on-chain state is fresh; a
    // stale (or unknown) channel is read from the chain, outside the channel's lock, and tried again.
    let reserved = await reserve(undefined, Date.now()).catch((error: unknown) => {
      overlapping.delete(channelId);
      throw error;
    });
    // Whatever comes next but serving — a chain read, a refusal that tells the channel's state and the
    // payer's last voucher — is for a voucher its payer signed: a signature left for later is checked now.
    if (deferred && reserved.kind !== "reserved") {
      overlapping.delete(channelId);
      const bad = checkSignature(payload);
      if (bad) return { ok: false, kind: "payment", ...bad };
      deferred = false;
    }
    // A payer may also top its channel up straight on chain: a voucher above the balance read last is
    // checked against the chain once more, at most once per channel every BALANCE_RECHECK_MS.
    const aboveCachedBalance =
      reserved.kind === "refused" &&
      reserved.reason === ChannelReason.cumulativeExceedsBalance &&
      Date.now() - (reserved.channel?.onchainSyncedAt ?? 0) >= BALANCE_RECHECK_MS &&
      takeBalanceRecheck(channelId);
    // A deposit opening a channel the ledger has no row of is verified before it is reserved (which writes
    // the row): one that cannot pay (no funds, a bad authorization) leaves nothing behind.
    let depositVerified = false;
    if (reserved.kind === "stale" && !stored && payload.type === "deposit") {
      // A payer that owes is told so first, as for a channel the ledger knows (a new channel owes nothing).
      if (parameters.payerOwes && (await parameters.payerOwes(payload.channelConfig.payer.toLowerCase())))
        return {
          ok: false,
          kind: "payment",
          reason: PAYER_IN_DEBT,
          message: "the payer owes an earlier charge",
        };
      let unverified: ChannelAcceptance | undefined;
      try {
        unverified = await verifyDeposit(payment, requirements);
      } catch (error) {
        logger.warn({ channelId, error: String(error) }, "channel deposit: facilitator unavailable");
        return {
          ok: false,
          kind: "unavailable",
          message: "the facilitator is unreachable; no inference was run",
        };
      }
      if (unverified) return unverified;
      depositVerified = true;
    }
    if (reserved.kind === "stale" || aboveCachedBalance) {
      let onchain: OnchainChannelState | undefined;
      try {
        onchain = await readChannelState(chain, settlement, channelId);
      } catch (error) {
        logger.warn({ channelId, error: String(error) }, "channel state read failed");
        if (reserved.kind === "stale")
          return {
            ok: false,
            kind: "unavailable",
            message: "the chain is unreachable; no inference was run",
          };
      }
      if (onchain) reserved = await reserve(onchain, Date.now());
    }
    if (reserved.kind === "stale") throw new Error("a channel read from the chain is never stale");
    if (reserved.kind === "refused") {
      const { kind: _refused, elsewhereAtomic, aboveLedgerAtomic, ...refusal } = reserved;
      if (aboveLedgerAtomic !== undefined)
        logger.warn(
          {
            channelId,
            payer: payload.channelConfig.payer,
            aboveLedgerAtomic: aboveLedgerAtomic.toString(),
            chargedAtomic: refusal.channel?.chargedAtomic.toString(),
          },
          "a channel's payer signs above this ledger's charges: it was charged more than this ledger holds (an older copy of the ledger restored, or another ledger that took its vouchers); those charges only that ledger can claim: if this gateway should have it (its data dir and charge journal, DATABASE_URL), stop it and point it back before the payer can withdraw them",
        );
      if (elsewhereAtomic !== undefined)
        logger.warn(
          {
            channelId,
            payer: payload.channelConfig.payer,
            elsewhereAtomic: elsewhereAtomic.toString(),
            claimedOnchainAtomic: refusal.channel?.totalClaimedAtomic.toString(),
          },
          "a channel this ledger has no record of was charged through another ledger, not claimed: this gateway cannot claim those charges; if it should have that ledger (its data dir, DATABASE_URL), stop it and point it back before the other claims lapse",
        );
      return { ok: false, kind: "payment", ...refusal };
    }

    let depositTransaction: string | undefined;
    if (payload.type === "deposit") {
      // A payer that owes is served by no channel, so a deposit into any channel but the one it owes on
      // would move its money (and the seller's gas) for nothing.
      const owedHere = reserved.channel.chargedAtomic > reserved.channel.balanceAtomic;
      const refused =
        !owedHere &&
        parameters.payerOwes !== undefined &&
        (await parameters
          .payerOwes(payload.channelConfig.payer.toLowerCase())
          .catch(async (error: unknown) => {
            await release(channelId, pendingId).catch(() => undefined);
            throw error;
          }));
      if (refused) {
        await release(channelId, pendingId).catch(() => undefined);
        return {
          ok: false,
          kind: "payment",
          reason: PAYER_IN_DEBT,
          message: "the payer owes an earlier charge",
        };
      }
      // Taken in one step before it is sent: small deposits of one payer sent at once (into channels of
      // their own), to this replica or another, would all pass the first check, none of them made yet.
      let smallDepositUse: string | undefined;
      if (smallDeposit) {
        const taken = await parameters.quotas
          .take({
            ...smallDepositScope(payload.channelConfig.payer),
            limit: smallDepositsPerDay,
            atMs: Date.now(),
          })
          .catch(async (error: unknown) => {
            await release(channelId, pendingId).catch(() => undefined);
            throw error;
          });
        if (!taken.taken) {
          await release(channelId, pendingId).catch(() => undefined);
          return pastSmallAllowance(taken.usedAtMs.length);
        }
        smallDepositUse = taken.id;
      }
      let deposited: Awaited<ReturnType<typeof settleDeposit>>;
      try {
        deposited = await settleDeposit(payment, requirements, channelId, pendingId, depositAtomic, {
          expiresIn: quote.timeBoundMs + marginMs,
          verified: depositVerified,
        });
      } catch (error) {
        if (smallDepositUse) await parameters.quotas.giveBack(smallDepositUse).catch(() => undefined);
        throw error;
      }
      // Counted once made: a deposit that never went through (or one naming another's payer address) is not.
      if (!deposited.ok && smallDepositUse)
        await parameters.quotas.giveBack(smallDepositUse).catch(() => undefined);
      if (!deposited.ok) {
        await release(channelId, pendingId).catch(() => undefined);
        return deposited.failure;
      }
      depositTransaction = deposited.transaction;
    }

    const voucherMaxAtomic = payload.voucher.maxClaimableAmount;
    const payer = payload.channelConfig.payer.toLowerCase();
    return {
      ok: true,
      payer,
      // One ledger row per request: the nonce is the reservation's random id.
      nonce: BigInt(`0x${pendingId}`).toString(),
      ...(deferred
        ? {
            async checkSignature(onBad?: () => void) {
              overlapping.delete(channelId);
              const bad = checkSignature(payload);
              if (!bad) return undefined;
              onBad?.();
              // The reservation expires with the request's time bound if it cannot be freed now.
              await release(channelId, pendingId).catch((error: unknown) =>
                logger.warn(
                  { channelId, error: String(error) },
                  "a badly signed voucher's reservation was not freed; it expires with its time bound",
                ),
              );
              return { ok: false as const, kind: "payment" as const, ...bad };
            },
          }
        : {}),
      reservation: {
        channelId,
        voucherMaxAtomic,
        ...(depositTransaction ? { depositTransaction } : {}),
        release: () => release(channelId, pendingId),
        async charge(paymentId, usage, chargeAtomic, unwritten) {
          // Delivered already: a database that is out is waited for while the reservation holds.
          const committed = await retryLedgerWrite({
            write: (retry) =>
              channels.update<ChannelRecord | undefined>(channelId, (current) => {
                if (!current) return { result: undefined };
                // An earlier try whose answer was lost may have committed: the channel then holds this
                // voucher (a voucher is charged once), and its charge must not be told as lost.
                if (
                  retry &&
                  current.pending?.id !== pendingId &&
                  current.signature === payload.voucher.signature &&
                  current.signedMaxAtomic === voucherMaxAtomic
                )
                  return { result: current };
                if (current.pending?.id !== pendingId) return { result: undefined };
                const chargedAtomic = current.chargedAtomic + chargeAtomic;
                if (chargedAtomic > voucherMaxAtomic) return { result: undefined };
                const next: ChannelRecord = {
                  ...current,
                  chargedAtomic,
                  signedMaxAtomic: voucherMaxAtomic,
                  signature: payload.voucher.signature,
                  lastRequestAt: Date.now(),
                  pending: undefined,
                };
                return {
                  next,
                  result: next,
                  alsoWrite: channelRowWrite(paymentId, { usage, chargeAtomic }, unwritten),
                };
              }),
            withinMs: quote.timeBoundMs + marginMs,
            paymentId,
            logger,
          }).catch(async (error: unknown) => {
            await release(channelId, pendingId).catch(() => undefined);
            throw error;
          });
          const settled: SettleResponse = committed
            ? {
                success: true,
                transaction: depositTransaction ?? "",
                network: terms.network,
                payer,
                amount: chargeAtomic.toString(),
                extra: { chargedAmount: chargeAtomic.toString(), channelState: channelStateExtra(committed) },
              }
            : {
                success: false,
                errorReason: "channel_reservation_lost",
                transaction: "",
                network: terms.network,
                payer,
                amount: "0",
              };
          if (!committed) {
            // The reservation outlived its bound and the channel moved on: nothing can be charged on this voucher.
            logger.error({ channelId, paymentId }, "channel reservation lost before the charge; not charged");
            await failPaymentRow(channels, channelId, paymentId, unwritten, logger);
          }
          return { settlement: settled, chargeAtomic: committed ? chargeAtomic : 0n, usage };
        },
      },
    };
  }

  /** Why the facilitator does not take a deposit, or undefined when it does (thrown when it cannot be asked). */
  async function verifyDeposit(
    payment: PaymentPayload,
    requirements: PaymentRequirements,
  ): Promise<ChannelAcceptance | undefined> {
    const verified = await facilitator.verify(payment, requirements);
    if (verified.isValid) return undefined;
    return {
      ok: false,
      kind: "payment",
      reason: verified.invalidReason ?? ChannelReason.depositFailed,
      message: verified.invalidMessage ?? "the deposit did not verify",
    };
  }

  async function settleDeposit(
    payment: PaymentPayload,
    requirements: PaymentRequirements,
    channelId: Hex,
    pendingId: string,
    depositAtomic: bigint,
    reservation: { expiresIn: number; verified: boolean },
  ): Promise<{ ok: true; transaction: string } | { ok: false; failure: ChannelAcceptance }> {
    try {
      const unverified = reservation.verified ? undefined : await verifyDeposit(payment, requirements);
      if (unverified) return { ok: false, failure: unverified };
      const settled = await facilitator.settle(payment, requirements);
      if (!settled.success)
        return {
          ok: false,
          failure: {
            ok: false,
            kind: "payment",
            reason: settled.errorReason ?? ChannelReason.depositFailed,
            message: settled.errorMessage ?? "the deposit transaction failed",
          },
        };
      const onchain = await readChannelState(chain, settlement, channelId);
      const held = await channels.update(channelId, (current) => {
        if (!current) return { result: false };
        const now = Date.now();
        const held = current.pending?.id === pendingId;
        return {
          next: {
            ...current,
            // The deposit just landed: a read that does not show it yet (an RPC a block behind) is not believed.
            balanceAtomic: largerOf(onchain.balanceAtomic, current.balanceAtomic + depositAtomic),
            totalClaimedAtomic: onchain.totalClaimedAtomic,
            withdrawRequestedAt: onchain.withdrawRequestedAt,
            refundNonce: onchain.refundNonce,
            depositedAtomic: current.depositedAtomic + depositAtomic,
            onchainSyncedAt: now,
            // The request runs from now: its reservation must outlive it, however long the deposit took.
            ...(held && current.pending
              ? { pending: { ...current.pending, expiresAt: now + reservation.expiresIn } }
              : {}),
          },
          result: held,
        };
      });
      logger.info(
        { channelId, depositAtomic: depositAtomic.toString(), tx: settled.transaction },
        "channel deposit",
      );
      parameters.emit?.({
        type: "channel_deposit",
        at: Date.now(),
        network: terms.network,
        channelId,
        amountAtomic: depositAtomic,
        transaction: settled.transaction,
      });
      // The deposit outlasted the reservation and another request took the channel on the same
      // base: serving this one too could never be charged. The deposit stays in the channel.
      if (!held)
        return {
          ok: false,
          failure: {
            ok: false,
            kind: "payment",
            reason: ChannelReason.channelBusy,
            message:
              "the deposit landed, but another request took the channel while it did; no inference was run; sign a voucher on the channel's new state",
          },
        };
      return { ok: true, transaction: settled.transaction };
    } catch (error) {
      logger.warn({ channelId, error: String(error) }, "channel deposit: facilitator or chain unavailable");
      return {
        ok: false,
        failure: {
          ok: false,
          kind: "unavailable",
          message: "the facilitator or chain is unreachable; no inference was run",
        },
      };
    }
  }

  return {
    terms,
    offer,
    accept,
    checkChannel,
    isFresh,
    release,
    settlementAddress: settlement,
    chainId,
    minDepositAtomic: parameters.minDepositAtomic,
  };
}

export type ChannelBilling = ReturnType<typeof createChannelBilling>;

/** The payment row of a voucher whose reservation was lost: failed (inserted so, when it was never written). */
async function failPaymentRow(
  channels: ChannelLedger,
  channelId: Hex,
  paymentId: number,
  unwritten: ClaimPaymentInput | undefined,
  logger: Logger,
) {
  await channels
    .update(channelId, (current) =>
      current
        ? {
            next: current,
            result: undefined,
            alsoWrite: channelRowWrite(paymentId, { failed: "channel reservation lost" }, unwritten),
          }
        : { result: undefined },
    )
    // Nothing was charged either way; a row left open is only a row the ledger shows as unfinished.
    .catch((error: unknown) =>
      logger.warn(
        { channelId, paymentId, error: String(error) },
        "the lost reservation's row was not failed",
      ),
    );
}
