import {
  computeChannelId,
  depositAmountForRequest,
  recoverChannel,
  updateChannelFromSettle,
} from "@x402/evm/batch-settlement/client";
import type { Address, PublicClient } from "viem";
import { TollgateError } from "../errors/index.js";
import {
  decodePaymentRequiredHeader,
  PAYMENT_REQUIRED_HEADER,
  type PaymentRequired,
} from "../protocol/index.js";
import {
  authorizePayment,
  type PaidReceipt,
  type PaymentAttempt,
  type PaymentContext,
} from "./authorizePayment.js";
import { bookChannelExcess } from "./bookChannelExcess.js";
import type { ChannelPool, ChannelSlot } from "./channelPool.js";
import { disputeClaimAboveCounted } from "./disputeClaimAboveCounted.js";
import type { InferenceRequest } from "./inferenceRequest.js";
import { money, policyRefusedError } from "./policyRefusal.js";
import { type ChannelOnChain, readChannelOnChain } from "./readChannelOnChain.js";
import type { OfferChoice } from "./selectOffer.js";
import { spendChannelStorage } from "./spendChannelStorage.js";

/** What a channel payment needs beyond the paying fetch's shared context. */
export type ChannelPaymentContext = PaymentContext & {
  pool: ChannelPool;
  /** Reads the payer's token balance, when the buyer has an RPC. */
  readBalance?: ((token: Address) => Promise<bigint>) | undefined;
};

/** The error codes of a corrective 402: the buyer's view of the channel is behind the seller's. */
const CORRECTIVE_ERRORS = new Set([
  "invalid_batch_settlement_evm_cumulative_amount_mismatch",
  "invalid_batch_settlement_evm_cumulative_below_claimed",
]);

/**
 * The refusal of a voucher on a channel the seller is still serving (a request this buyer gave up
 * on, or another process paying from the same key): tried again after a short wait, a few times.
 */
const CHANNEL_BUSY = "invalid_batch_settlement_evm_channel_busy";
const BUSY_RETRY_DELAYS_MS: readonly number[] = [100, 200, 400, 800, 1_600];

/** The refusal of a voucher above the channel's balance: the channel needs a top-up deposit. */
const EXCEEDS_BALANCE = "invalid_batch_settlement_evm_cumulative_exceeds_balance";

/**
 * Pays one request by voucher on a channel of the pool, depositing first when the channel is
 * empty or too low. Before anything is signed: the deposit is sized within `maxDeposit` and the
 * room left under today's caps, and the voucher's increment (the request's maximum) is reserved
 * like an upto maximum. The receipt reconciles the reservation to the charge and moves the
 * channel's cumulative amount on; a corrective 402 resyncs the channel and pays once more.
 */
export async function payByChannel(
  context: ChannelPaymentContext,
  {
    url,
    origin,
    paymentRequired,
    choice,
    request,
    send,
    authorizedAtomic,
  }: {
    url: string;
    origin: string;
    paymentRequired: PaymentRequired;
    choice: OfferChoice;
    request: InferenceRequest | undefined;
    /** Sends the paid request and books its response (`settlePaidResponse`). */
    send: (attempt: PaymentAttempt) => Promise<Response>;
    /** What the same request already authorized outside the channel (judged against `confirmAbove`). */
    authorizedAtomic?: bigint | undefined;
  },
): Promise<Response> {
  const { offer } = choice;
  const slot = await context.pool.acquire(offer);
  let handedOver = false;
  /** The payment being sent, until its answer is in hand. */
  let sending: { paymentId: string; channel: PreparedChannel } | undefined;
  try {
    let resynced = false;
    let toppedUp = false;
    let busyRetries = 0;
    for (;;) {
      const channel = await prepareChannel(context, slot, { url, origin, choice });
      const paid = await authorizePayment(context, {
        url,
        origin,
        paymentRequired,
        choice,
        request,
        firstRequest: false,
        client: slot.client,
        channel: { channelId: channel.channelId, depositAtomic: channel.depositAtomic },
        ...(authorizedAtomic !== undefined ? { authorizedAtomic } : {}),
      });
      paid.onReceipt = async (receipt) => {
        try {
          // A charge above the request's maximum is refused here and flagged by the overcharge
          // check; the channel then resyncs through the seller's corrective 402.
          if (receipt?.success)
            await recordCharge(context, channel, offer.amount, receipt, paid.paymentId).catch(
              () => undefined,
            );
          else await assumeDepositMade(context, slot, channel);
        } finally {
          slot.release();
        }
      };
      handedOver = true;
      sending = { paymentId: paid.paymentId, channel };
      const response = await send(paid);
      sending = undefined;
      if (response.status !== 402) return response;
      // The seller refused the voucher (the reservation is released). Its 402 may carry the
      // channel's state: vouchers whose receipts were lost are settled from it; then, once each,
      // a buyer behind the seller's cumulative resyncs and a channel short of balance is topped up.
      handedOver = false;
      await assumeDepositMade(context, slot, channel);
      const refusal = decodePaymentRequiredHeader(response.headers.get(PAYMENT_REQUIRED_HEADER));
      if (!refusal.ok) return response;
      const error = refusal.paymentRequired.error ?? "";
      const state = channelStateOf(refusal.paymentRequired, channel.channelId);
      // A seller whose state is proved by a voucher it refused holds that voucher: what it states charged on
      // it past what this buyer counted is counted and disputed before any voucher is signed on that state;
      // judged at every corrective 402, the second of a call too.
      if (CORRECTIVE_ERRORS.has(error) && state?.chargedCumulativeAtomic !== undefined)
        await disputeChargeOnRefusedVoucher(context, {
          channelId: channel.channelId,
          url,
          origin,
          offer,
          statedAtomic: state.chargedCumulativeAtomic,
          namedAtomic: state.signedMaxClaimable,
          refusedId: paid.paymentId,
        });
      // What the seller claimed on chain past what this buyer counted (its latest voucher taken whole)
      // is counted and disputed before the buyer resyncs onto it.
      if (CORRECTIVE_ERRORS.has(error))
        await disputeClaimOnChain(context, slot, { channelId: channel.channelId, origin });
      if (CORRECTIVE_ERRORS.has(error) && !resynced) {
        resynced = true;
        // The client checks the seller's state against the chain and its own last voucher first.
        const recovered = await slot.scheme
          .processCorrectivePaymentRequired(refusal.paymentRequired)
          .catch(() => false);
        if (!recovered) return response;
        // A charged total above what the receipt of the seller's latest voucher said is money the
        // seller holds a voucher for and did not tell of: counted, disputed, not signed on.
        if (
          state?.chargedCumulativeAtomic !== undefined &&
          (await disputeUnexplainedCharge(context, {
            channelId: channel.channelId,
            url,
            origin,
            offer,
            statedAtomic: state.chargedCumulativeAtomic,
            lastVoucherAtomic: state.signedMaxClaimable,
            refusedId: paid.paymentId,
          }))
        )
          return response;
      } else if (error === EXCEEDS_BALANCE && state?.balance !== undefined && !toppedUp) {
        toppedUp = true;
        // The chain's word where the buyer can read it, not the seller's: a seller saying the channel is
        // short cannot make the buyer deposit again into a channel that holds enough. Without an RPC the
        // seller's word may raise the recorded balance (this key deposited from another store) but never
        // lower it below what this buyer recorded depositing: else every request would deposit again.
        const onChain = await chainReaderOf(slot)?.(channel.channelId);
        await noteBalance(
          context,
          channel.channelId,
          onChain ? { balance: onChain.balanceAtomic, totalClaimed: onChain.totalClaimedAtomic } : state,
          { mayLower: onChain !== undefined },
        );
      } else if (error === CHANNEL_BUSY && busyRetries < BUSY_RETRY_DELAYS_MS.length) {
        await response.body?.cancel().catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, BUSY_RETRY_DELAYS_MS[busyRetries]));
        busyRetries += 1;
        // Whoever held the channel moved its cumulative on: one more resync is due.
        resynced = false;
        continue;
      } else return response;
      if (state?.chargedCumulativeAtomic !== undefined)
        await reconcileLostReceipts(context, channel.channelId, state.chargedCumulativeAtomic);
      await response.body?.cancel().catch(() => undefined);
    }
  } catch (error) {
    // A payment whose sending failed once it may have reached the seller stays reserved (one that
    // certainly did not is released): a deposit it carried may have been settled.
    const reservation =
      sending && (await (await context.store()).reservation(sending.paymentId).catch(() => undefined));
    if (sending && reservation?.status === "reserved")
      await assumeDepositMade(context, slot, sending.channel).catch(() => undefined);
    handedOver = false;
    throw error;
  } finally {
    if (!handedOver) slot.release();
  }
}

type PreparedChannel = {
  channelId: `0x${string}`;
  depositAtomic: bigint | undefined;
};

/** Records the slot's channel, reads its state, and decides (and plans) the deposit it needs. */
async function prepareChannel(
  context: ChannelPaymentContext,
  slot: ChannelSlot,
  { url, origin, choice }: { url: string; origin: string; choice: OfferChoice },
): Promise<PreparedChannel> {
  const { offer } = choice;
  const store = await context.store();
  let config: ReturnType<typeof slot.scheme.buildChannelConfig>;
  try {
    config = slot.scheme.buildChannelConfig(offer);
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_PAYMENT_REQUIRED",
      shortMessage: `${origin} offers a channel (batch-settlement) without a usable receiverAuthorizer in its extra, so no channel can be opened`,
      details: { origin, network: offer.network },
      cause,
    });
  }
  const channelId = computeChannelId(config, offer.network);
  await store.recordChannel({
    channelId,
    payer: context.payer,
    origin,
    url,
    network: offer.network,
    asset: offer.asset,
    payTo: offer.payTo,
    receiverAuthorizer: config.receiverAuthorizer,
    withdrawDelay: config.withdrawDelay,
    salt: slot.salt,
    slot: slot.index,
    config: { ...config },
  });
  let state = await store.channelContext(channelId);
  if (state === undefined && slot.deps.signer.readContract) {
    state = await recoverChannel(slot.deps, offer).catch(() => undefined);
  }
  let balance = BigInt(state?.balance ?? "0");
  const charged = BigInt(state?.chargedCumulativeAmount ?? "0");
  const requestAtomic = BigInt(offer.amount);
  const maxClaimable = charged + requestAtomic;
  if (maxClaimable > balance) {
    // A deposit the record lacks (settled by a seller that answered 402, or whose receipt was lost) is
    // on chain: read where the buyer can, before another is signed.
    const onChain = await chainReaderOf(slot)?.(channelId);
    if (onChain && onChain.balanceAtomic > balance) {
      balance = onChain.balanceAtomic;
      await noteBalance(context, channelId, { balance }, { mayLower: false });
    }
  }
  if (balance > 0n && maxClaimable <= balance) {
    await slot.planDeposit(undefined);
    return { channelId, depositAtomic: undefined };
  }
  const opening = balance === 0n;
  // Openings are planned one at a time, each counting those planned before it and not yet settled, with
  // this provider (its bound) and with any (maxEscrow): a burst cannot open more than the bounds allow,
  // nor can processes sharing the spend store.
  const unlock = opening ? await context.pool.lockOpenings() : undefined;
  try {
    const depositAtomic = await planDeposit(context, chainReaderOf(slot), {
      channelId,
      opening: opening ? { channelId } : undefined,
      url,
      origin,
      offer,
      neededAtomic: maxClaimable - balance,
      requestAtomic,
    });
    await slot.planDeposit(depositAtomic, opening ? { origin, channelId } : undefined);
    return { channelId, depositAtomic };
  } finally {
    await unlock?.();
  }
}

/**
 * The deposit for a channel that needs `neededAtomic` more to cover the next voucher: the
 * seller's `minDeposit` hint or 5× the request (the official client's default), but never above
 * `maxDeposit` (global or the provider's), the room left under `maxEscrow` and today's caps, or the wallet's
 * balance; never below what is needed. Refuses, before anything is signed, when `maxDeposit`
 * cannot cover what is needed.
 */
async function planDeposit(
  context: ChannelPaymentContext,
  readChannel: ChannelReader | undefined,
  {
    channelId,
    opening,
    url,
    origin,
    offer,
    neededAtomic,
    requestAtomic,
  }: {
    /** The channel the deposit goes into. */
    channelId: string;
    /** The channel holds nothing yet: a new channel, bounded by what the provider already holds. */
    opening: { channelId: string } | undefined;
    url: string;
    origin: string;
    offer: OfferChoice["offer"];
    neededAtomic: bigint;
    requestAtomic: bigint;
  },
): Promise<bigint> {
  const { policy } = context;
  const provider = policy.providers[origin];
  // A policy that bounds no deposit at all (no maxDeposit, daily or maxEscrow) would leave its size to
  // the seller's minDeposit hint, up to the whole wallet: it gets DEFAULT_MAX_DEPOSIT_ATOMIC.
  const unbounded =
    policy.maxDeposit === undefined &&
    provider?.maxDeposit === undefined &&
    policy.daily === undefined &&
    provider?.daily === undefined &&
    policy.maxEscrow === undefined;
  const maxDeposit = policy.maxDeposit ?? (unbounded ? DEFAULT_MAX_DEPOSIT_ATOMIC : undefined);
  const limits: Array<["maxDeposit" | "providers.maxDeposit", bigint | undefined]> = [
    ["maxDeposit", maxDeposit],
    ["providers.maxDeposit", provider?.maxDeposit],
  ];
  const capName = (rule: string) =>
    rule === "maxDeposit" && policy.maxDeposit === undefined
      ? "maxDeposit cap (its default, for a policy that sets no maxDeposit, daily or maxEscrow)"
      : `${rule} cap`;
  for (const [rule, limitAtomic] of limits) {
    if (limitAtomic !== undefined && neededAtomic > limitAtomic) {
      const refusal = {
        rule,
        message: `opening a channel with ${origin} needs a deposit of at least ${money(neededAtomic)}, above the ${capName(rule)} of ${money(limitAtomic)}`,
        limitAtomic,
        askedAtomic: neededAtomic,
        origin,
      };
      context.emit({ type: "refused", url, origin, refusal });
      throw policyRefusedError(refusal);
    }
  }
  // What the provider already holds of the buyer's, unspent, across its channels: a provider that
  // changes its channel's terms (a new receiverAuthorizer, delay or payTo) opens new channels, and the
  // pool's honest need is one maxDeposit per slot. Past that, the deposit is refused.
  // A top-up of a channel in use is not: it only follows charges, which the daily caps count.
  const heldAtomic = opening ? await escrowHeldBy(context, readChannel, origin, opening.channelId) : 0n;
  for (const [rule, limitAtomic] of limits) {
    if (limitAtomic === undefined || !opening) continue;
    const roomAtomic = limitAtomic * BigInt(context.pool.size) - heldAtomic;
    if (neededAtomic > roomAtomic) {
      const refusal = {
        rule,
        message: `${origin} already holds ${money(heldAtomic)} of yours unspent in its channels; a deposit of ${money(neededAtomic)} more is above ${context.pool.size} × the ${capName(rule)} of ${money(limitAtomic)} (one per channel of the pool): ask for a refund of the channels it no longer uses`,
        limitAtomic: limitAtomic * BigInt(context.pool.size),
        askedAtomic: heldAtomic + neededAtomic,
        origin,
      };
      context.emit({ type: "refused", url, origin, refusal });
      throw policyRefusedError(refusal);
    }
  }
  // What all sellers together hold unspent: a new channel is opened only within `maxEscrow` (default
  // `daily`), so an agent led from seller to seller cannot lock up more than that. A top-up is never
  // refused for it (it follows charges), but is sized within it: a seller's hint does not size it.
  const escrowCap = policy.maxEscrow ?? policy.daily;
  const escrowRoomAtomic =
    escrowCap !== undefined
      ? escrowCap - (await escrowHeldBy(context, readChannel, undefined, channelId))
      : undefined;
  // A need above `daily` itself is the daily cap's to refuse (with its own rule), not the escrow's.
  const escrowRefuses =
    opening !== undefined &&
    escrowRoomAtomic !== undefined &&
    neededAtomic > escrowRoomAtomic &&
    (policy.maxEscrow !== undefined || neededAtomic <= (escrowCap ?? 0n));
  if (escrowRoomAtomic !== undefined && escrowRefuses) {
    const refusal = {
      rule: "maxEscrow" as const,
      message: `sellers already hold ${money((escrowCap ?? 0n) - escrowRoomAtomic)} of yours unspent in channels; opening one with ${origin} needs ${money(neededAtomic)} more, above the ${policy.maxEscrow !== undefined ? "maxEscrow" : "daily (maxEscrow's default)"} cap of ${money(escrowCap ?? 0n)}: ask for refunds of the channels no longer used (tollgate refund)`,
      limitAtomic: escrowCap,
      askedAtomic: neededAtomic,
      origin,
    };
    context.emit({ type: "refused", url, origin, refusal });
    throw policyRefusedError(refusal);
  }
  let depositAtomic = BigInt(depositAmountForRequest(undefined, requestAtomic, neededAtomic, offer.extra));
  const ceilings: bigint[] = limits.flatMap(([, limit]) =>
    limit === undefined ? [] : opening ? [limit, limit * BigInt(context.pool.size) - heldAtomic] : [limit],
  );
  if (escrowRoomAtomic !== undefined) ceilings.push(escrowRoomAtomic);
  if (policy.daily !== undefined || provider?.daily !== undefined) {
    const today = await (await context.store()).daySpend();
    const providerSpent = today.providers.find((entry) => entry.origin === origin)?.countedAtomic ?? 0n;
    if (policy.daily !== undefined) ceilings.push(policy.daily - today.countedAtomic);
    if (provider?.daily !== undefined) ceilings.push(provider.daily - providerSpent);
  }
  const walletAtomic = await context.readBalance?.(offer.asset as Address).catch(() => undefined);
  if (walletAtomic !== undefined) ceilings.push(walletAtomic);
  for (const ceiling of ceilings) if (depositAtomic > ceiling) depositAtomic = ceiling;
  return depositAtomic < neededAtomic ? neededAtomic : depositAtomic;
}

/**
 * The largest deposit into one channel when the policy bounds none (no maxDeposit, daily or maxEscrow):
 * $1.00 of a 6-decimal token, as the CLI's default policy.
 */
export const DEFAULT_MAX_DEPOSIT_ATOMIC = 1_000_000n;

/** Reads a channel as the contract holds it; undefined when it cannot (no RPC, or it failed). */
type ChannelReader = (channelId: string) => Promise<ChannelOnChain | undefined>;

/** The slot's way to read channels on chain, when the buyer has an RPC. */
function chainReaderOf(slot: ChannelSlot): ChannelReader | undefined {
  const { signer } = slot.deps;
  if (!signer.readContract) return undefined;
  const client = {
    readContract: ((args: Parameters<NonNullable<typeof signer.readContract>>[0]) =>
      signer.readContract?.(args)) as Pick<PublicClient, "readContract">["readContract"],
  };
  return (channelId) => readChannelOnChain(client, channelId, 0).catch(() => undefined);
}

/**
 * The buyer's money a provider holds unspent in its channels: each channel's balance (refunds and
 * withdrawals out, every deposit in, read on chain where the buyer can, else as last recorded) less
 * what was charged or claimed; and the opening deposits planned in this process and not yet settled
 * (a channel's counted once, as the larger of the two), but for the channel `opening`'s own.
 */
async function escrowHeldBy(
  context: ChannelPaymentContext,
  readChannel: ChannelReader | undefined,
  /** One provider's channels; undefined: every provider's. */
  origin: string | undefined,
  opening: string,
): Promise<bigint> {
  const store = await context.store();
  const planned = await context.pool.openingsOf(origin);
  planned.delete(opening.toLowerCase());
  let heldAtomic = 0n;
  for (const channel of await store.channels({ origin, payer: context.payer })) {
    const onChain = await readChannel?.(channel.channelId);
    const balance = onChain?.balanceAtomic ?? BigInt(channel.context?.balance ?? "0");
    const charged = BigInt(channel.context?.chargedCumulativeAmount ?? "0");
    const spent = onChain && onChain.totalClaimedAtomic > charged ? onChain.totalClaimedAtomic : charged;
    const unspent = balance > spent ? balance - spent : 0n;
    const id = channel.channelId.toLowerCase();
    const plannedAtomic = planned.get(id) ?? 0n;
    planned.delete(id);
    heldAtomic += unspent > plannedAtomic ? unspent : plannedAtomic;
  }
  for (const plannedAtomic of planned.values()) heldAtomic += plannedAtomic;
  return heldAtomic;
}

/** The channel's state a seller's 402 carries (`extra.channelState` of its channel offer), if for this channel. */
function channelStateOf(paymentRequired: PaymentRequired, channelId: string) {
  for (const offer of paymentRequired.accepts) {
    const state = (offer.extra as { channelState?: Record<string, unknown> } | undefined)?.channelState;
    if (typeof state?.channelId !== "string" || state.channelId.toLowerCase() !== channelId.toLowerCase())
      continue;
    const amount = (value: unknown) =>
      typeof value === "string" && /^[0-9]+$/.test(value) ? BigInt(value) : undefined;
    const voucher = (offer.extra as { voucherState?: Record<string, unknown> } | undefined)?.voucherState;
    return {
      chargedCumulativeAtomic: amount(state.chargedCumulativeAmount),
      balance: amount(state.balance),
      totalClaimed: amount(state.totalClaimed),
      /** The latest voucher the seller holds on the channel (a corrective 402's `voucherState`). */
      signedMaxClaimable: amount(voucher?.signedMaxClaimable),
    };
  }
  return undefined;
}

/**
 * Settles the channel's vouchers sent without a receipt (a stream cut short, a lost final event)
 * from the seller's charged cumulative amount, known while none of them is in flight.
 */
async function reconcileLostReceipts(
  context: ChannelPaymentContext,
  channelId: string,
  chargedCumulativeAtomic: bigint,
  except?: string,
) {
  const store = await context.store();
  const reconciled = await store
    .reconcileChannelVouchers(channelId, chargedCumulativeAtomic, { except })
    .catch(() => []);
  for (const voucher of reconciled)
    context.emit({
      type: "reconciled",
      paymentId: voucher.id,
      origin: voucher.origin,
      channelId,
      maxAtomic: voucher.maxAtomic,
      chargedAtomic: voucher.chargedAtomic,
    });
}

/**
 * When a seller's corrective 402 names as its latest voucher this buyer's latest, whose receipt it has, the
 * channel's charged total must be that voucher's base plus the charge its receipt stated. A higher
 * total means the receipt understated what the seller took: the seller holds the voucher for the
 * difference, so it is booked as spent (every cap counts it) and disputed (`above_receipts`), and the
 * voucher is not signed again on this request. True when it did so. A latest voucher this store has
 * no receipt for is not judged: the key may pay the channel from another store too.
 */
async function disputeUnexplainedCharge(
  context: ChannelPaymentContext,
  {
    channelId,
    url,
    origin,
    offer,
    statedAtomic,
    lastVoucherAtomic,
    refusedId,
  }: {
    channelId: string;
    url: string;
    origin: string;
    offer: OfferChoice["offer"];
    statedAtomic: bigint;
    lastVoucherAtomic: bigint | undefined;
    /** The voucher just refused: not one the seller holds as served. */
    refusedId: string;
  },
): Promise<boolean> {
  if (lastVoucherAtomic === undefined) return false;
  const store = await context.store();
  // Judged only against this store's latest voucher before the refused one, when it has its receipt
  // and is the voucher the seller names: an equal amount signed twice (a retry) is not taken for it.
  // Vouchers the seller refused (released) or that lapsed unused were never served: not the seller's latest.
  const last = (await store.channelVouchers(channelId))
    .filter(
      (voucher) =>
        voucher.id !== refusedId && (voucher.status === "settled" || voucher.status === "reserved"),
    )
    .at(-1);
  if (
    last?.status !== "settled" ||
    last.chargedAtomic === undefined ||
    last.baseAtomic + last.maxAtomic !== lastVoucherAtomic
  )
    return false;
  const explainedAtomic = last.baseAtomic + last.chargedAtomic;
  // No more than the voucher signs can be claimed on chain: that much is booked, not what is stated.
  const takenAtomic = statedAtomic < lastVoucherAtomic ? statedAtomic : lastVoucherAtomic;
  if (takenAtomic <= explainedAtomic) return false;
  const excessAtomic = takenAtomic - explainedAtomic;
  const message = `the seller states ${statedAtomic} charged on channel ${channelId} up to voucher ${lastVoucherAtomic}, whose receipt said ${last.chargedAtomic} on ${last.baseAtomic}`;
  await bookUnexplainedCharge(context, {
    channelId,
    url,
    origin,
    offer,
    statedAtomic,
    excessAtomic,
    message,
  });
  return true;
}

/**
 * When a seller's corrective 402 proves its charged total with a voucher this buyer sent and the seller
 * refused (the one just refused, or one refused before: a voucher of the same amount), the seller holds
 * that voucher, whatever it served on it. What the state says was charged above what this buyer counted
 * on the channel (the refused voucher's base, plus the maxima of its vouchers still reserved for want of
 * a receipt) is booked as spent (every cap counts it) and disputed (`above_receipts`): else each refusal
 * would move the base a whole maximum on, and the seller would hold vouchers for what no cap counted.
 * Another process paying the channel from the same key with a store of its own signs the same vouchers,
 * and its charges look the same from here: they are counted too, the dispute says so. True when it booked.
 */
async function disputeChargeOnRefusedVoucher(
  context: ChannelPaymentContext,
  {
    channelId,
    url,
    origin,
    offer,
    statedAtomic,
    namedAtomic,
    refusedId,
  }: {
    channelId: string;
    url: string;
    origin: string;
    offer: OfferChoice["offer"];
    statedAtomic: bigint;
    /** The voucher the seller names as its latest (`voucherState.signedMaxClaimable`). */
    namedAtomic: bigint | undefined;
    refusedId: string;
  },
): Promise<boolean> {
  if (namedAtomic === undefined) return false;
  const store = await context.store();
  const vouchers = await store.channelVouchers(channelId);
  const refused = vouchers.find((voucher) => voucher.id === refusedId);
  if (refused === undefined) return false;
  // A voucher signs its channel and amount only: one of the same amount is the same claim. One refused,
  // then sent again and served (a retry after channel_busy), is the served one's to judge.
  const signs = (voucher: (typeof vouchers)[number]) =>
    voucher.baseAtomic + voucher.maxAtomic === namedAtomic;
  const namesRefused =
    vouchers.some(
      (voucher) => (voucher.id === refusedId || voucher.status === "released") && signs(voucher),
    ) &&
    !vouchers.some(
      (voucher) =>
        voucher.id !== refusedId &&
        (voucher.status === "settled" || voucher.status === "reserved") &&
        signs(voucher),
    );
  if (!namesRefused) return false;
  const pendingAtomic = vouchers
    .filter((voucher) => voucher.id !== refusedId && voucher.status === "reserved")
    .reduce((sum, voucher) => sum + voucher.maxAtomic, 0n);
  // What this buyer has counted on the channel: its base, or past it what was booked here before (a
  // charge of this kind already disputed is not counted twice), and the vouchers awaiting a receipt.
  let countedAtomic = refused.baseAtomic;
  for (const voucher of vouchers) {
    const reached = voucher.baseAtomic + (voucher.chargedAtomic ?? 0n);
    if (voucher.status === "settled" && reached > countedAtomic) countedAtomic = reached;
  }
  const explainedAtomic = countedAtomic + pendingAtomic;
  const takenAtomic = statedAtomic < namedAtomic ? statedAtomic : namedAtomic;
  if (takenAtomic <= explainedAtomic) return false;
  const excessAtomic = takenAtomic - explainedAtomic;
  const message = `the seller refused voucher ${namedAtomic} on channel ${channelId}, then stated ${statedAtomic} charged on it; this buyer counted ${explainedAtomic} on the channel (unless another process pays this channel from the same key with a spend store of its own, the seller served nothing for the difference)`;
  await bookUnexplainedCharge(context, {
    channelId,
    url,
    origin,
    offer,
    statedAtomic,
    excessAtomic,
    message,
    baseAtomic: explainedAtomic,
  });
  return true;
}

/** Books a channel charge no receipt explains as spent and disputes it (`bookChannelExcess`), and tells the listener. */
async function bookUnexplainedCharge(
  context: ChannelPaymentContext,
  {
    channelId,
    url,
    origin,
    offer,
    statedAtomic,
    excessAtomic,
    message,
    baseAtomic,
  }: {
    channelId: string;
    url: string;
    origin: string;
    offer: OfferChoice["offer"];
    statedAtomic: bigint;
    excessAtomic: bigint;
    message: string;
    baseAtomic?: bigint | undefined;
  },
): Promise<void> {
  const booked = await bookChannelExcess(await context.store(), {
    channel: { channelId, origin, url, network: offer.network, asset: offer.asset, payTo: offer.payTo },
    payer: context.payer,
    excessAtomic,
    baseAtomic,
    statedAtomic,
    message,
  });
  if (!booked) return;
  context.emit({
    type: "overcharge",
    paymentId: booked.paymentId,
    origin,
    reason: "above_receipts",
    chargedAtomic: excessAtomic,
    justifiedAtomic: 0n,
    maxAtomic: excessAtomic,
    transaction: "",
    network: offer.network,
    usage: undefined,
    disputeId: booked.disputeId,
  });
}

/** Reads what the seller claimed on the channel, when the buyer can, and books and disputes a claim above what it counted. */
async function disputeClaimOnChain(
  context: ChannelPaymentContext,
  slot: ChannelSlot,
  { channelId, origin }: { channelId: string; origin: string },
) {
  const onChain = await chainReaderOf(slot)?.(channelId);
  if (!onChain) return;
  const store = await context.store();
  const channel = (await store.channels({ origin, payer: context.payer })).find(
    (candidate) => candidate.channelId.toLowerCase() === channelId.toLowerCase(),
  );
  if (!channel) return;
  const booked = await disputeClaimAboveCounted(store, {
    channel,
    payer: context.payer,
    totalClaimedAtomic: onChain.totalClaimedAtomic,
  });
  if (!booked) return;
  context.emit({
    type: "overcharge",
    paymentId: booked.paymentId,
    origin,
    reason: "above_receipts",
    chargedAtomic: booked.excessAtomic,
    justifiedAtomic: 0n,
    maxAtomic: booked.excessAtomic,
    transaction: "",
    network: channel.network,
    usage: undefined,
    disputeId: booked.disputeId,
  });
}

/**
 * Records the channel's balance (the chain's, or else the seller's word, which `mayLower: false` keeps
 * from going below the recorded one), so the next attempt plans the deposit it lacks.
 */
async function noteBalance(
  context: ChannelPaymentContext,
  channelId: string,
  state: { balance?: bigint | undefined; totalClaimed?: bigint | undefined },
  { mayLower }: { mayLower: boolean },
) {
  const store = await context.store();
  const current = (await store.channelContext(channelId)) ?? {};
  const recorded = typeof current.balance === "string" ? BigInt(current.balance) : 0n;
  const balance =
    state.balance === undefined || mayLower || state.balance > recorded ? state.balance : recorded;
  await store.saveChannelContext(channelId, {
    ...current,
    ...(balance !== undefined ? { balance: balance.toString() } : {}),
    ...(state.totalClaimed !== undefined ? { totalClaimed: state.totalClaimed.toString() } : {}),
  });
}

/**
 * Without an RPC, a deposit sent and answered without a receipt of its success (a 402, a failed
 * settlement, a stream cut short, a connection lost once the request may have reached the seller) is taken as made: the seller may have settled it, and the buyer
 * cannot read the chain to know. The channel's record holds it, so the next request signs no deposit
 * into that channel on the seller's answer alone, and what sellers hold counts it against `maxEscrow`.
 * With an RPC the chain says what the channel holds.
 */
async function assumeDepositMade(
  context: ChannelPaymentContext,
  slot: ChannelSlot,
  channel: PreparedChannel,
) {
  if (channel.depositAtomic === undefined || chainReaderOf(slot)) return;
  const store = await context.store();
  const current = (await store.channelContext(channel.channelId)) ?? {};
  const recorded = typeof current.balance === "string" ? BigInt(current.balance) : 0n;
  await store.saveChannelContext(channel.channelId, {
    ...current,
    balance: (recorded + channel.depositAtomic).toString(),
  });
}

/**
 * After a receipt: the channel's cumulative amount moves on by the charge; a deposit is booked;
 * vouchers before this one that lost their receipts are settled from the cumulative it was
 * charged on.
 */
async function recordCharge(
  context: ChannelPaymentContext,
  channel: PreparedChannel,
  requestAmount: string,
  receipt: PaidReceipt,
  paymentId: string,
) {
  const store = await context.store();
  const channelState = receipt.extra?.channelState as { chargedCumulativeAmount?: unknown } | undefined;
  const cumulative = channelState?.chargedCumulativeAmount;
  await updateChannelFromSettle(spendChannelStorage(context.store), {
    server: {
      chargedAmount: receipt.chargedAtomic.toString(),
      chargedCumulativeAmount: typeof cumulative === "string" ? cumulative : undefined,
    },
    local: {
      channelId: channel.channelId,
      requestAmount,
      depositAmount: channel.depositAtomic?.toString(),
    },
  });
  if (channel.depositAtomic !== undefined)
    await store.recordDeposit(channel.channelId, channel.depositAtomic);
  if (typeof cumulative === "string" && /^[0-9]+$/.test(cumulative)) {
    const before = BigInt(cumulative) - receipt.chargedAtomic;
    if (before >= 0n) await reconcileLostReceipts(context, channel.channelId, before, paymentId);
  }
}
