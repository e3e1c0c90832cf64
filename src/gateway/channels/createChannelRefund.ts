import type { PaymentRequired } from "@x402/core/types";
import type { Hex, LocalAccount, PublicClient } from "viem";
import type { Logger } from "../../errors/index.js";
import type { ChannelLedger, ChannelRecord, PayerQuotas } from "../../ledger/index.js";
import {
  decodePaymentSignatureHeader,
  encodePaymentRequiredHeader,
  encodePaymentResponseHeader,
  type HeaderReader,
  PAYMENT_REQUIRED_HEADER,
  PAYMENT_RESPONSE_HEADER,
  ReasonCode,
  readPaymentHeader,
} from "../../protocol/index.js";
import type { BillingEvent } from "../BillingEvent.js";
import type { FacilitatorLike } from "../facilitatorLike.js";
import { signClaimBatch, signRefund } from "./channelAuthorizer.js";
import { correctiveOffers } from "./channelOffers.js";
import { channelPayloadSchema, largerOf } from "./channelPayload.js";
import { ChannelReason } from "./channelReasons.js";
import type { ChannelBilling } from "./createChannelBilling.js";
import { readChannelState } from "./readChannelState.js";

/** How long a refund holds its channel without renewal; renewed while the refund waits for the chain. */
const REFUND_LEASE_MS = 120_000;

const DAY_MS = 86_400_000;

/** The path where a payer asks for its channel's unspent balance back (`@x402/evm` client's `refund(url)`). */
export const CHANNEL_REFUND_PATH = "/v1/channels/refund";

export type CreateChannelRefundParameters = {
  billing: ChannelBilling;
  channels: ChannelLedger;
  facilitator: FacilitatorLike;
  chain: PublicClient;
  receiverAuthorizer: LocalAccount;
  /** Refund transactions one payer may have sent for it in 24 h (default 8). */
  refundsPerPayerPerDay?: number;
  /** Where each payer's refunds are counted: the ledger's, so replicas and restarts share the count. */
  quotas: PayerQuotas;
  logger: Logger;
  /** Told of each refund that landed (`channel_refund`), and of the claim it made (`channel_claim`). */
  emit?: ((event: BillingEvent) => void) | undefined;
};

export type ChannelRefundAnswer = {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
};

/**
 * Cooperative refund: the payer signs a voucher for exactly what was charged; the gateway claims
 * that, then refunds the rest of the balance (one facilitator call, `refundWithSignature`).
 * @see https://github.com/x402-foundation/x402/blob/main/specs/schemes/batch-settlement/scheme_batch_settlement_evm.md
 */
export function createChannelRefund({
  billing,
  channels,
  facilitator,
  chain,
  receiverAuthorizer,
  refundsPerPayerPerDay = 8,
  quotas,
  logger,
  emit,
}: CreateChannelRefundParameters) {
  const network = billing.terms.network;
  return async function refundChannel(request: {
    url: string;
    headers: HeaderReader;
  }): Promise<ChannelRefundAnswer> {
    const offer = billing.offer(0n);
    const paymentRequired = (error: string, channel?: ChannelRecord): ChannelRefundAnswer => {
      const required: PaymentRequired = {
        x402Version: 2,
        error,
        resource: {
          url: request.url,
          description: "Cooperative refund of a payment channel",
          mimeType: "application/json",
        },
        accepts: channel ? correctiveOffers([offer], channel) : [offer],
      };
      return {
        status: 402,
        headers: { [PAYMENT_REQUIRED_HEADER]: encodePaymentRequiredHeader(required) },
        body: required as unknown as Record<string, unknown>,
      };
    };
    const header = readPaymentHeader(request.headers);
    if (header === undefined) return paymentRequired("sign a refund voucher for the charged amount");
    const decoded = decodePaymentSignatureHeader(header);
    if (!decoded.ok)
      return {
        status: 400,
        headers: {},
        body: { error: { message: `malformed payment header: ${decoded.message}` } },
      };
    const parsed = channelPayloadSchema.safeParse(decoded.payload.payload);
    if (!parsed.success || parsed.data.type !== "refund") {
      const issue = parsed.success ? undefined : parsed.error.issues[0];
      const field = issue?.path.length ? `payload.${issue.path.join(".")}` : "payload.type";
      return {
        status: 400,
        headers: {},
        body: {
          error: {
            message: `malformed payment header: ${field}: ${issue?.message ?? "must be refund"} (a batch-settlement refund payload)`,
            field,
          },
        },
      };
    }
    const payload = parsed.data;
    const problem = await billing.checkChannel(payload);
    if (problem) return paymentRequired(`${problem.reason}: ${problem.message}`);
    const channelId = payload.voucher.channelId.toLowerCase() as Hex;
    // A channel the ledger has no row of was never paid through here: nothing to refund, and no chain read
    // for a stranger's made-up channel.
    if ((await channels.get(channelId)) === undefined) return paymentRequired(ChannelReason.missingChannel);
    // Each payer's refunds of the last 24 h: a refund is a transaction the seller pays, and a payer could
    // otherwise deposit (also at the seller's gas) and be refunded in a loop, for nothing. Taken now, in one
    // step, so that refunds of one payer's channels asked at once (of any replica) count each other; given
    // back when refused before a transaction is sent.
    const askedAt = Date.now();
    const taken = await quotas.take({
      kind: "refund",
      network,
      payer: payload.channelConfig.payer,
      sinceMs: askedAt - DAY_MS,
      limit: refundsPerPayerPerDay,
      atMs: askedAt,
    });
    if (!taken.taken) {
      const again = new Date((taken.usedAtMs[0] ?? askedAt) + DAY_MS).toISOString();
      return paymentRequired(
        `${ReasonCode.refundLimitReached}: this payer had ${taken.usedAtMs.length} cooperative refunds in the last 24 h (limit ${refundsPerPayerPerDay}, each a transaction the seller pays); ask again after ${again}, or withdraw on chain (initiateWithdraw, then finalizeWithdraw after the channel's delay; tollgate refund --rpc)`,
      );
    }
    const forget = () => quotas.giveBack(taken.id).catch(() => undefined);
    let onchain: Awaited<ReturnType<typeof readChannelState>>;
    try {
      onchain = await readChannelState(chain, billing.settlementAddress, channelId);
    } catch {
      await forget();
      return {
        status: 503,
        headers: { "retry-after": "5" },
        body: { error: { message: "the chain is unreachable" } },
      };
    }
    const pendingId = `refund-${Date.now()}-${Math.random().toString(16).slice(2)}`;
    const now = Date.now();
    type Reserve =
      | { ok: true; channel: ChannelRecord; amountAtomic: bigint }
      | { ok: false; reason: string; message?: string; channel?: ChannelRecord };
    const reserved = await channels.update<Reserve>(channelId, (current) => {
      if (!current) return { result: { ok: false, reason: ChannelReason.missingChannel } };
      if (current.pending && current.pending.expiresAt > now)
        return { result: { ok: false, reason: ChannelReason.channelBusy } };
      const charged = largerOf(onchain.totalClaimedAtomic, current.chargedAtomic);
      const state: ChannelRecord = {
        ...current,
        chargedAtomic: charged,
        signedMaxAtomic: largerOf(current.signedMaxAtomic, charged),
        balanceAtomic: onchain.balanceAtomic,
        totalClaimedAtomic: onchain.totalClaimedAtomic,
        withdrawRequestedAt: onchain.withdrawRequestedAt,
        refundNonce: onchain.refundNonce,
        onchainSyncedAt: now,
      };
      if (payload.voucher.maxClaimableAmount !== charged)
        return {
          next: state,
          result: { ok: false, reason: ChannelReason.cumulativeMismatch, channel: state },
        };
      const remainder = state.balanceAtomic - charged;
      if (remainder <= 0n)
        return { next: state, result: { ok: false, reason: ChannelReason.refundNoBalance } };
      const amountAtomic = payload.amount ?? remainder;
      if (amountAtomic <= 0n || amountAtomic > remainder)
        return { next: state, result: { ok: false, reason: ChannelReason.refundAmountInvalid } };
      // Every refund is a transaction the seller pays for: a partial one must return at least a
      // deposit's worth, or a payer could have the seller send one per atomic unit of its balance.
      if (amountAtomic < remainder && amountAtomic < billing.minDepositAtomic)
        return {
          next: state,
          result: {
            ok: false,
            reason: ChannelReason.refundAmountInvalid,
            message: `a partial refund returns at least the channel's minimum deposit ${billing.minDepositAtomic}, not ${amountAtomic}; ask without an amount to get the whole ${remainder} back`,
          },
        };
      const next = {
        ...state,
        pending: { id: pendingId, maxAtomic: charged, expiresAt: now + REFUND_LEASE_MS },
      };
      return { next, result: { ok: true, channel: next, amountAtomic } };
    });
    if (!reserved.ok) {
      await forget();
      return paymentRequired(
        reserved.message ? `${reserved.reason}: ${reserved.message}` : reserved.reason,
        reserved.channel,
      );
    }

    const { channel, amountAtomic } = reserved;
    const claims =
      channel.chargedAtomic > channel.totalClaimedAtomic
        ? [
            {
              voucher: { channel: channel.config, maxClaimableAmount: channel.chargedAtomic.toString() },
              signature: payload.voucher.signature,
              totalClaimed: channel.chargedAtomic.toString(),
            },
          ]
        : [];
    const chainId = billing.chainId;
    const enriched = {
      ...payload,
      voucher: { ...payload.voucher, maxClaimableAmount: payload.voucher.maxClaimableAmount.toString() },
      amount: amountAtomic.toString(),
      refundNonce: channel.refundNonce.toString(),
      claims,
      refundAuthorizerSignature: await signRefund(
        receiverAuthorizer,
        channelId,
        channel.refundNonce,
        amountAtomic,
        chainId,
      ),
      ...(claims.length > 0
        ? { claimAuthorizerSignature: await signClaimBatch(receiverAuthorizer, claims, network, chainId) }
        : {}),
    };
    /** Waits for a sent refund's receipt, then frees the channel with the chain's state of it. */
    const holdUntilMined = async (hash: Hex) => {
      for (;;) {
        try {
          await chain.waitForTransactionReceipt({ hash, timeout: 60_000 });
          break;
        } catch (error) {
          logger.warn(
            { channelId, tx: hash, error: String(error) },
            "channel refund: still waiting for its transaction",
          );
        }
      }
      const after = await readChannelState(chain, billing.settlementAddress, channelId).catch(
        () => undefined,
      );
      await channels.update(channelId, (current) =>
        current?.pending?.id === pendingId
          ? {
              next: {
                ...current,
                ...(after
                  ? {
                      balanceAtomic: after.balanceAtomic,
                      totalClaimedAtomic: after.totalClaimedAtomic,
                      refundNonce: after.refundNonce,
                      withdrawRequestedAt: after.withdrawRequestedAt,
                      onchainSyncedAt: Date.now(),
                    }
                  : { onchainSyncedAt: null }),
                pending: undefined,
              },
              result: undefined,
            }
          : { result: undefined },
      );
    };
    const free = () =>
      channels.update(channelId, (current) =>
        current?.pending?.id === pendingId
          ? { next: { ...current, pending: undefined }, result: undefined }
          : { result: undefined },
      );
    // The channel stays reserved for as long as the refund waits for the chain: a voucher served on
    // the balance being refunded could never be claimed. A gateway that dies stops renewing it.
    const renew = setInterval(() => {
      channels
        .update(channelId, (current) =>
          current?.pending?.id === pendingId
            ? {
                next: {
                  ...current,
                  pending: { ...current.pending, expiresAt: Date.now() + REFUND_LEASE_MS },
                },
                result: undefined,
              }
            : { result: undefined },
        )
        .catch((error: unknown) =>
          logger.warn({ channelId, error: String(error) }, "channel refund: renewal failed"),
        );
    }, REFUND_LEASE_MS / 4);
    renew.unref();
    let settled: Awaited<ReturnType<FacilitatorLike["settle"]>>;
    try {
      settled = await facilitator.settle({ ...decoded.payload, accepted: offer, payload: enriched }, offer);
    } catch (error) {
      clearInterval(renew);
      // No transaction was sent: not counted against the payer's refunds.
      await forget();
      await free();
      logger.warn({ channelId, error: String(error) }, "channel refund: facilitator unavailable");
      return {
        status: 503,
        headers: { "retry-after": "5" },
        body: { error: { message: "the facilitator is unreachable" } },
      };
    }
    if (!settled.success && settled.transaction) {
      // Sent but not yet mined (the facilitator stopped waiting): the refund may still land, so the
      // channel stays reserved until the chain has decided, then takes the chain's state.
      void holdUntilMined(settled.transaction as Hex).finally(() => clearInterval(renew));
      logger.warn(
        { channelId, reason: settled.errorReason, tx: settled.transaction },
        "channel refund not confirmed; the channel waits for its transaction",
      );
      return {
        status: 503,
        headers: { "retry-after": "30" },
        body: {
          error: {
            message: `the refund transaction ${settled.transaction} is not confirmed yet (${settled.errorReason ?? "pending"}); the channel takes no voucher until it is`,
          },
        },
      };
    }
    clearInterval(renew);
    if (!settled.success) {
      // Failed with no transaction sent (one sent and not yet mined is answered above): not counted.
      await forget();
      await free();
      logger.warn({ channelId, reason: settled.errorReason }, "channel refund failed");
      return {
        status: 402,
        headers: { [PAYMENT_RESPONSE_HEADER]: encodePaymentResponseHeader(settled) },
        body: { error: { message: `the refund failed: ${settled.errorReason ?? "unknown"}` } },
      };
    }
    const after = await readChannelState(chain, billing.settlementAddress, channelId).catch(() => undefined);
    await channels.update(channelId, (current) =>
      current
        ? {
            next: {
              ...current,
              balanceAtomic: after?.balanceAtomic ?? current.balanceAtomic - amountAtomic,
              totalClaimedAtomic: after?.totalClaimedAtomic ?? current.chargedAtomic,
              refundNonce: after?.refundNonce ?? current.refundNonce + 1n,
              refundedAtomic: current.refundedAtomic + amountAtomic,
              onchainSyncedAt: after ? Date.now() : current.onchainSyncedAt,
              pending: current.pending?.id === pendingId ? undefined : current.pending,
            },
            result: undefined,
          }
        : { result: undefined },
    );
    logger.info(
      { channelId, refundedAtomic: amountAtomic.toString(), tx: settled.transaction },
      "channel refunded",
    );
    const told = { at: Date.now(), network, channelId, transaction: settled.transaction };
    if (claims.length > 0)
      emit?.({
        ...told,
        type: "channel_claim",
        amountAtomic: channel.chargedAtomic - channel.totalClaimedAtomic,
      });
    emit?.({ ...told, type: "channel_refund", amountAtomic });
    const response = {
      ...settled,
      payer: channel.payer,
      amount: amountAtomic.toString(),
      extra: { channelState: { chargedCumulativeAmount: channel.chargedAtomic.toString() } },
    };
    return {
      status: 200,
      headers: { [PAYMENT_RESPONSE_HEADER]: encodePaymentResponseHeader(response) },
      body: {
        message: "refunded",
        channelId,
        refundedAtomic: amountAtomic.toString(),
        transaction: settled.transaction,
      },
    };
  };
}
