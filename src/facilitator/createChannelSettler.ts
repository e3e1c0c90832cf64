import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import { computeChannelId } from "@x402/evm/batch-settlement/client";
import type { Hex, TransactionReceipt } from "viem";
import {
  batchSettlementAbi,
  isTransportError,
  type TollgateFacilitatorSigner,
  withRpcFailureScope,
} from "../chain/index.js";
import { type Logger, TollgateError } from "../errors/index.js";
import { ReasonCode } from "../protocol/index.js";
import { channelPayloadSummaryOf, channelRequestKeyOf } from "./batchSettlementPayload.js";

export type CreateChannelSettlerParameters = {
  /** The x402 facilitator with `@x402/evm`'s batch-settlement scheme registered. */
  settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse>;
  signer: TollgateFacilitatorSigner;
  logger: Logger;
  chainUnavailable(cause: unknown, operation: string): TollgateError;
  /** Called with the receipt of each successful transaction (sponsored-approval accounting). */
  settled?(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    receipt: TransactionReceipt,
  ): Promise<void> | void;
};

/** A claim row as `@x402/evm` sends it: the channel, its voucher's amount, and the total to claim. */
type ClaimRow = {
  voucher: { channel: Parameters<typeof computeChannelId>[0] };
  totalClaimed: string;
};

/**
 * Settles batch-settlement payloads (deposit, claim, settle, refund) through the scheme, with
 * the facilitator's rules: concurrent copies of one request share one attempt, an unreachable
 * chain is reported as such, and one log line per call. There is no settlement-store record:
 * these payloads carry no (payer, nonce) authorization, the contract itself refuses a replayed
 * deposit or refund, and a retried deposit is reconciled by the scheme's pending-settlement store.
 */
export function createChannelSettler({
  settle,
  signer,
  logger,
  chainUnavailable,
  settled,
}: CreateChannelSettlerParameters) {
  const inFlight = new Map<string, Promise<SettleResponse>>();

  /**
   * Whether a claim would raise no channel's claimed total: the contract skips a row at or below its
   * channel's total, so such a claim lands, moves nothing, and costs its gas (any receiver-authorizer
   * key can sign one, for channels that do not exist). False when the chain cannot be read.
   */
  async function claimMovesNothing(payload: PaymentPayload): Promise<boolean> {
    const inner = payload.payload as { type?: unknown; claims?: unknown };
    if (inner.type !== "claim" || !Array.isArray(inner.claims) || inner.claims.length === 0) return false;
    try {
      const totals = await Promise.all(
        (inner.claims as ClaimRow[]).map(async (row) => {
          const [, totalClaimed] = (await signer.readContract({
            address: BATCH_SETTLEMENT_ADDRESS,
            abi: batchSettlementAbi,
            functionName: "channels",
            args: [computeChannelId(row.voucher.channel, payload.accepted.network)],
          })) as readonly [bigint, bigint];
          return BigInt(row.totalClaimed) > totalClaimed;
        }),
      );
      return !totals.includes(true);
    } catch {
      return false;
    }
  }

  async function settleOnce(payload: PaymentPayload, requirements: PaymentRequirements) {
    const startedAt = performance.now();
    const described = {
      scheme: requirements.scheme,
      network: requirements.network,
      ...channelPayloadSummaryOf(payload),
      amount: requirements.amount,
      payTo: requirements.payTo,
    };
    if (await claimMovesNothing(payload)) {
      logger.warn(
        { op: "settle", outcome: "refused", reason: ReasonCode.claimMovesNothing, ...described },
        "facilitator settle",
      );
      return {
        success: false,
        errorReason: ReasonCode.claimMovesNothing,
        errorMessage:
          "no row of this claim raises its channel's claimed total on chain (each is claimed that far already, or its channel holds nothing): it would move nothing, so nothing was sent",
        transaction: "",
        network: requirements.network,
      };
    }
    let result: SettleResponse;
    try {
      const attempt = await withRpcFailureScope(() => settle(payload, requirements));
      result = attempt.result;
      if (!result.success && attempt.scope.transportError)
        throw chainUnavailable(attempt.scope.transportError, "settle");
    } catch (error) {
      const failure =
        error instanceof TollgateError
          ? error
          : isTransportError(error)
            ? chainUnavailable(error, "settle")
            : error;
      logger.warn(
        { op: "settle", outcome: "error", error: String(failure), ...described },
        "facilitator settle",
      );
      throw failure;
    }
    const receipt = result.transaction ? signer.takeReceipt(result.transaction as Hex) : undefined;
    if (result.success && receipt) await settled?.(payload, requirements, receipt);
    logger.info(
      {
        op: "settle",
        outcome: result.success ? "settled" : "failed",
        reason: result.errorReason,
        ...described,
        settledAmount: result.amount,
        tx: result.transaction || undefined,
        durationMs: Math.round(performance.now() - startedAt),
      },
      "facilitator settle",
    );
    return result;
  }

  return function settleChannelAction(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
  ): Promise<SettleResponse> {
    const id = channelRequestKeyOf(payload);
    const pending = inFlight.get(id);
    if (pending) return pending;
    const attempt = settleOnce(payload, requirements).finally(() => inFlight.delete(id));
    inFlight.set(id, attempt);
    return attempt;
  };
}
