import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import type { Hex, TransactionReceipt } from "viem";
import { isTransportError, type TollgateFacilitatorSigner, withRpcFailureScope } from "../chain/index.js";
import { type Logger, TollgateError } from "../errors/index.js";
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

  async function settleOnce(payload: PaymentPayload, requirements: PaymentRequirements) {
    const startedAt = performance.now();
    const described = {
      scheme: requirements.scheme,
      network: requirements.network,
      ...channelPayloadSummaryOf(payload),
      amount: requirements.amount,
      payTo: requirements.payTo,
    };
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
