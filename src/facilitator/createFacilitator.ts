import { type PendingSettlementStore, x402Facilitator } from "@x402/core/facilitator";
import type {
  PaymentPayload,
  PaymentRequirements,
  SettleResponse,
  SupportedResponse,
  VerifyResponse,
} from "@x402/core/types";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/facilitator";
import { ExactEvmScheme } from "@x402/evm/exact/facilitator";
import { UptoEvmScheme } from "@x402/evm/upto/facilitator";
import { createErc20ApprovalGasSponsoringExtension, EIP2612_GAS_SPONSORING } from "@x402/extensions";
import {
  type Address,
  erc20Abi,
  getAddress,
  type Hex,
  keccak256,
  TransactionNotFoundError,
  type TransactionReceipt,
  TransactionReceiptNotFoundError,
} from "viem";
import {
  chainIdOf,
  createFacilitatorSigner,
  eip2612NoncesAbi,
  isTransportError,
  type TollgateFacilitatorSigner,
  withRpcFailureScope,
} from "../chain/index.js";
import { currentRequestId, type Logger, silentLogger, TollgateError } from "../errors/index.js";
import { createMemoryPayerQuotas, type PayerQuotas } from "../ledger/index.js";
import { ReasonCode } from "../protocol/index.js";
import { createAssetCheck, REASON_ASSET_NOT_ACCEPTED } from "./acceptedAssets.js";
import { channelPayloadSummaryOf, isBatchSettlementPayment } from "./batchSettlementPayload.js";
import { createChannelSettler } from "./createChannelSettler.js";
import {
  approvalMismatch,
  createApprovalCheck,
  createErc20ApprovalSponsor,
  type Erc20ApprovalSponsorship,
} from "./erc20ApprovalSponsor.js";
import type { FacilitatorEventListener } from "./FacilitatorEvent.js";
import { isAuthorizationSpent } from "./findSettlementOnChain.js";
import { hasMatchingTransfer } from "./findTransfer.js";
import {
  checkEip2612Permit,
  createSponsorshipBudget,
  type GasSponsoringOptions,
  SponsoredApprovalRefused,
  sponsoredApprovalOf,
} from "./gasSponsoring.js";
import { createPayerFundsGuard } from "./payerFundsGuard.js";
import { createPermitHolds } from "./permitHolds.js";
import { type SettlementKey, settlementKeyOf, settlementKeyString } from "./settlementKey.js";
import { createMemorySettlementStore, type SettlementStore } from "./settlementStore.js";

export type CreateFacilitatorParameters = {
  rpcUrl: string;
  privateKey: Hex;
  /** CAIP-2 network this facilitator settles on, e.g. `eip155:137`. */
  network: `eip155:${number}`;
  settlementStore?: SettlementStore;
  logger?: Logger;
  /** Receipt polling interval (ms); small on a local chain. */
  pollingIntervalMs?: number;
  receiptTimeoutMs?: number;
  rpcTimeoutMs?: number;
  /** JSON-RPC calls made in the same tick go out as one batch request. */
  rpcBatch?: boolean;
  /**
   * Paying the gas of buyers' Permit2 approvals (`eip2612GasSponsoring`): on by default, at most
   * `perPayerLimit` (3) per payer. When on, `/supported` lists the extension; with `erc20Approval`
   * also `erc20ApprovalGasSponsoring` (relayed `approve` transactions, for tokens without EIP-2612).
   */
  gasSponsoring?: GasSponsoringOptions;
  /**
   * Where each payer's sponsored approvals are counted against `gasSponsoring.perPayerLimit`: the
   * ledger's (`Ledger.quotas`), so replicas and restarts share the count; default this process's memory.
   */
  payerQuotas?: PayerQuotas;
  /**
   * Where batch-settlement deposits that were broadcast are remembered, so a retried settle
   * reconciles instead of broadcasting again; default in memory (one process).
   */
  pendingSettlementStore?: PendingSettlementStore;
  /**
   * The tokens it moves (`createAssetCheck`); default the network preset's USDC, or any on a network
   * without one (the devnet). A payment in another is refused before any transaction.
   */
  assets?: readonly string[];
  /** Receives verifications, confirmed settlements and sponsored approvals (see `FacilitatorEvent`). */
  onFacilitatorEvent?: FacilitatorEventListener;
  /**
   * Holds each EIP-2612 permit nonce for the first payment verified on it until that payment settles,
   * its seller releases it (`release`), or its permit expires, refusing others on the same nonce at verify, before a seller serves them:
   * of permits signed on one nonce only the first to land counts. Default on; held in this process's memory.
   * A server that admits such a payment alone itself (Tollgate's gateway, in its ledger) may turn it off.
   */
  holdPermits?: boolean;
};

/** What `release` did: the payment's holds given back, or why not. */
export type ReleaseResponse =
  | { released: true }
  | { released: false; reason: "settling" | "verified_again" | "not_held" };

/** A facilitator usable in-process; the same shape as x402's `FacilitatorClient`. */
export type TollgateFacilitator = {
  readonly address: Address;
  readonly network: `eip155:${number}`;
  readonly signer: TollgateFacilitatorSigner;
  /**
   * `again`: the payment is verified once more for a request it was verified for already (the relay
   * of its approval): a permit it holds stays held once, as one request's, for one release to give back.
   */
  verify(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    options?: { again?: boolean },
  ): Promise<VerifyResponse>;
  settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse>;
  getSupported(): Promise<SupportedResponse>;
  /**
   * Gives back what a verified payment holds when its seller drops it without settling (it refused the
   * request after verify, or could not serve it): its EIP-2612 permit nonce and its sponsored use. Refused
   * (`settling`) once a settle of it began; `verified_again` while the same payment, verified for
   * another request too, has not been let go of there (that request may be being served); `not_held`
   * when it holds nothing (never verified here, settled, or past its deadline).
   */
  release(payload: PaymentPayload, requirements: PaymentRequirements): Promise<ReleaseResponse>;
  /**
   * Relays a verified payment's signed `approve` before it is served (see `erc20ApprovalGasSponsoring`),
   * or takes the payer's sponsored use for its EIP-2612 permit: why it cannot be served, or undefined. Throws `TOLLGATE_CHAIN_UNAVAILABLE` when the chain cannot be reached.
   * Once `signal` aborts (the caller gave up), a relay that has not sent the approve's gas sends nothing.
   */
  relaySponsoredApproval(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    options?: { signal?: AbortSignal | undefined },
  ): Promise<string | undefined>;
};

/** Gas a settlement may use: an upto or exact settle (~82k), with a sponsored EIP-2612 permit before it. */
const SETTLEMENT_GAS_BOUND = 150_000n;
const REASON_TRANSFER_NOT_FOUND = "settlement_transfer_not_found";
const REASON_UNKNOWN_PAYLOAD = "invalid_payload";
/** Signed approvals remembered as verified, so settle can skip their fee check. */
const VERIFIED_APPROVALS_KEPT = 10_000;
/** The authorization was settled before for another amount: it cannot settle again. */
const REASON_SETTLED_DIFFERENTLY = "settled_for_another_amount";
/** x402's answer for a settlement sent whose receipt did not come in time: it may still land. */
const SETTLEMENT_PENDING = "settlement_pending";

/**
 * A facilitator for the `upto`, `exact` and `batch-settlement` schemes on one EVM network, built on
 * `@x402/core`'s facilitator and `@x402/evm`'s schemes, with what they lack: one nonce
 * manager for concurrent settles, idempotent settlement per authorization, success only
 * when the receipt shows the transfer, chain outages reported as such, and a log line per call.
 *
 * @example
 * const facilitator = createFacilitator({ rpcUrl, privateKey, network: "eip155:31337" });
 * const verified = await facilitator.verify(payload, requirements);
 */
export function createFacilitator({
  rpcUrl,
  privateKey,
  network,
  settlementStore = createMemorySettlementStore(),
  logger = silentLogger,
  pollingIntervalMs,
  receiptTimeoutMs,
  rpcTimeoutMs,
  rpcBatch,
  onFacilitatorEvent,
  gasSponsoring = { enabled: true },
  pendingSettlementStore,
  assets,
  payerQuotas = createMemoryPayerQuotas(),
  holdPermits = true,
}: CreateFacilitatorParameters): TollgateFacilitator {
  const assetRefusal = createAssetCheck(network, assets);
  const signer = createFacilitatorSigner({
    rpcUrl,
    privateKey,
    chainId: chainIdOf(network),
    pollingIntervalMs,
    receiptTimeoutMs,
    rpcTimeoutMs,
    rpcBatch,
    logger,
  });
  // @x402/evm starts its asset-contract check (getCode) and may return early without awaiting it: with the
  // chain down that rejection would go unhandled and kill the process. The scope records the outage, and
  // verify/settle then report the chain as unavailable, so the check may answer "no code" instead of throwing.
  const schemeSigner: TollgateFacilitatorSigner = {
    ...signer,
    getCode: (args) =>
      signer.getCode(args).catch((error: unknown) => {
        if (isTransportError(error)) return undefined;
        throw error;
      }),
  };
  const core = new x402Facilitator()
    .register(network, new UptoEvmScheme(schemeSigner))
    .register(network, new ExactEvmScheme(schemeSigner))
    // No authorizer signer: /supported then names no `receiverAuthorizer`, and servers sign their own
    // claims and refunds (`claimAuthorizerSignature`), since nothing here authenticates who asks for a refund.
    .register(network, new BatchSettlementEvmScheme(schemeSigner, undefined, { pendingSettlementStore }));
  const sponsorship = createSponsorshipBudget({
    ...gasSponsoring,
    network,
    quotas: payerQuotas,
  });
  if (sponsorship.enabled) core.registerExtension(EIP2612_GAS_SPONSORING);
  const erc20ApprovalCosts = new Map<string, Erc20ApprovalSponsorship>();
  const checkApproval = createApprovalCheck({
    publicClient: signer.publicClient,
    chainId: chainIdOf(network),
    refusal: async (payer) => (await sponsorship.refusal(payer))?.invalidMessage,
  });
  /** Hashes of signed approvals verify passed (the latest `VERIFIED_APPROVALS_KEPT`). */
  const verifiedApprovals = new Set<string>();
  const erc20Approval = sponsorship.enabled && gasSponsoring.erc20Approval === true;
  const erc20Sponsor = erc20Approval
    ? createErc20ApprovalSponsor({
        signer,
        sponsored: (settleTx, cost) => erc20ApprovalCosts.set(settleTx.toLowerCase(), cost),
        funding: (payer) => sponsorship.take(payer),
        // Checked at settle too (a client may skip /verify); the fee only for an approval verify did not pass.
        check: (approval) => checkApproval(approval, { fee: !verifiedApprovals.has(keccak256(approval)) }),
      })
    : undefined;
  if (erc20Sponsor) core.registerExtension(createErc20ApprovalGasSponsoringExtension(erc20Sponsor));
  /**
   * Sponsored uses taken for admitted payments carrying an EIP-2612 permit (`relaySponsoredApproval`),
   * by authorization, until their settle: kept when it sends a transaction, given back when it sends
   * none. The latest `VERIFIED_APPROVALS_KEPT`; one dropped past that stays counted.
   */
  const heldPermitUses = new Map<string, { giveBack(): Promise<void> }>();
  const chainId = chainIdOf(network);
  const readPermitNonce = async (token: Address, owner: Address) =>
    (await signer.readContract({
      address: token,
      abi: eip2612NoncesAbi,
      functionName: "nonces",
      args: [owner],
    })) as bigint;

  /** A refusal of a payment's gas-sponsoring request, before anything reaches the chain. */
  async function checkSponsorship(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
  ): Promise<VerifyResponse | undefined> {
    const sponsored = sponsoredApprovalOf(payload);
    if (!sponsored) return undefined;
    // Only the extensions this facilitator advertises are honoured.
    if (sponsored.extension === "erc20ApprovalGasSponsoring" && erc20Approval) {
      const signedApproval = (sponsored.info as { signedTransaction?: unknown }).signedTransaction;
      const why =
        typeof signedApproval === "string"
          ? ((await approvalMismatch(signedApproval as Hex, {
              payer: payerOf(payload, requirements),
              asset: requirements.asset,
              drawsThroughPermit2: drawsThroughPermit2(payload, requirements),
            })) ?? (await checkApproval(signedApproval as Hex, { fee: true })))
          : "it carries no signed transaction";
      if (why)
        return {
          isValid: false,
          invalidReason: ReasonCode.gasSponsoringRefused,
          invalidMessage: `the sponsored approval is refused: ${why}`,
          payer: sponsored.info.from,
        };
      verifiedApprovals.delete(keccak256(signedApproval as Hex));
      if (verifiedApprovals.size >= VERIFIED_APPROVALS_KEPT)
        verifiedApprovals.delete(verifiedApprovals.values().next().value as string);
      verifiedApprovals.add(keccak256(signedApproval as Hex));
      return undefined;
    }
    if (sponsored.extension !== "eip2612GasSponsoring")
      return {
        isValid: false,
        invalidReason: ReasonCode.gasSponsoringRefused,
        invalidMessage: `this facilitator does not support ${sponsored.extension}`,
        payer: sponsored.info.from,
      };
    const refused = await sponsorship.refusal(sponsored.info.from);
    if (refused) return refused;
    // A batch-settlement deposit's permit is checked by the scheme, against the deposit amount.
    if (isBatchSettlementPayment(requirements)) return undefined;
    return checkEip2612Permit({
      info: sponsored.info,
      payload,
      requirements,
      chainId,
      readNonce: readPermitNonce,
    });
  }
  const inFlight = new Map<string, Promise<SettleResponse>>();
  const permitHolds = holdPermits ? createPermitHolds() : undefined;

  /**
   * A verified payment carrying an EIP-2612 permit holds the permit's nonce until it settles: another
   * on the same nonce is refused, since only one of them could settle. Its settle takes the hold too
   * (`settling`), which a release (`release`) then leaves alone. Answers the refusal, if any.
   */
  function holdPermitOf(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    { settling = false, again = false }: { settling?: boolean; again?: boolean } = {},
  ): { nonce: string; payer: string; heldUntilMs: number } | undefined {
    if (!permitHolds || isBatchSettlementPayment(requirements)) return undefined;
    const sponsored = sponsoredApprovalOf(payload);
    const key = settlementKeyOf(payload);
    if (sponsored?.extension !== "eip2612GasSponsoring" || !key) return undefined;
    const { info } = sponsored;
    // Only the payer's own permit is held: another's, attached to a payment that does not use it
    // (an exact EIP-3009 authorization), must not lock that wallet's nonce.
    if (info.from.toLowerCase() !== key.payer) return undefined;
    // Neither the permit nor the payment can be used past its deadline: the hold ends with the sooner.
    const authorizationDeadline = (payload.payload as { permit2Authorization?: { deadline?: unknown } })
      .permit2Authorization?.deadline;
    const deadlines = [info.deadline, authorizationDeadline]
      .filter((deadline): deadline is string => typeof deadline === "string" && /^\d{1,15}$/.test(deadline))
      .map((deadline) => Number(deadline) * 1000);
    const untilMs =
      deadlines.length > 0 ? Math.min(...deadlines) : Date.now() + requirements.maxTimeoutSeconds * 1000;
    const held = permitHolds.take(
      { network: requirements.network, token: requirements.asset, owner: info.from, nonce: info.nonce },
      permitHolderOf(payload, key),
      untilMs,
      { settling, again },
    );
    return held.taken ? undefined : { nonce: info.nonce, payer: info.from, heldUntilMs: held.heldUntilMs };
  }

  /** A settle refused before any transaction: logged, and answered with its reason. */
  const refusedSettle = (
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    reason: string,
    message: string,
    { payer, ...logged }: { payer?: string; settledAmount?: string | undefined } = {},
  ): SettleResponse => {
    logger.warn(
      { op: "settle", outcome: "refused", reason, ...logged, ...describe(payload, requirements) },
      "facilitator settle",
    );
    return {
      success: false,
      errorReason: reason,
      errorMessage: message,
      transaction: "",
      network: requirements.network,
      ...(payer ? { payer } : {}),
    };
  };
  const withPayerFunds = createPayerFundsGuard(
    async (asset, payer) =>
      (await signer.readContract({
        address: getAddress(asset),
        abi: erc20Abi,
        functionName: "balanceOf",
        args: [getAddress(payer)],
      })) as bigint,
  );

  const chainUnavailable = (cause: unknown, operation: string) =>
    new TollgateError({
      code: "TOLLGATE_CHAIN_UNAVAILABLE",
      shortMessage: `chain RPC unreachable during ${operation}`,
      details: { network },
      cause,
    });

  /**
   * Refuses, before anything is served, a payment whose settlement this facilitator could not send: a
   * wallet without the gas for it would let every request be served and then fail to settle, each a
   * debt the payer did not cause. A channel request settles later, in batches, and is not refused here.
   */
  async function ensureGasForSettlement(requirements: PaymentRequirements, fresh = false): Promise<void> {
    if (isBatchSettlementPayment(requirements)) return;
    const { balanceWei, neededWei } = await signer.gasFunds(SETTLEMENT_GAS_BOUND, { fresh });
    if (balanceWei >= neededWei) return;
    const details = {
      network,
      facilitator: signer.address,
      balanceWei: balanceWei.toString(),
      neededWei: neededWei.toString(),
    };
    logger.error(
      details,
      "the facilitator's wallet cannot pay a settlement's gas: fund it; paid requests are refused until then",
    );
    throw new TollgateError({
      code: "TOLLGATE_FACILITATOR_UNAVAILABLE",
      shortMessage: "the facilitator's wallet cannot pay a settlement's gas; nothing ran, nothing is charged",
      details,
    });
  }

  const emit: FacilitatorEventListener = (event) => {
    try {
      onFacilitatorEvent?.(event);
    } catch (error) {
      logger.warn({ event: event.type, error: String(error) }, "a facilitator event listener threw");
    }
  };

  const describe = (payload: PaymentPayload, requirements: PaymentRequirements) => ({
    requestId: currentRequestId(),
    scheme: requirements.scheme,
    network: requirements.network,
    ...(isBatchSettlementPayment(requirements)
      ? channelPayloadSummaryOf(payload)
      : { payer: settlementKeyOf(payload)?.payer }),
    amount: requirements.amount,
    payTo: requirements.payTo,
  });

  async function verify(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    { again = false }: { again?: boolean } = {},
  ): Promise<VerifyResponse> {
    const startedAt = performance.now();
    try {
      const refusedAsset = assetRefusal(payload, requirements);
      const { result, scope } = refusedAsset
        ? {
            result: {
              isValid: false,
              invalidReason: REASON_ASSET_NOT_ACCEPTED,
              invalidMessage: refusedAsset,
            } as VerifyResponse,
            scope: { transportError: undefined },
          }
        : await withRpcFailureScope(async () => {
            await ensureGasForSettlement(requirements);
            const verified =
              (await checkSponsorship(payload, requirements)) ?? (await core.verify(payload, requirements));
            if (!verified.isValid) return verified;
            const held = holdPermitOf(payload, requirements, { again });
            if (!held) return verified;
            return {
              isValid: false,
              invalidReason: ReasonCode.eip2612PermitInFlight,
              invalidMessage: `another payment of this payer carrying an EIP-2612 permit on token nonce ${held.nonce} is verified and not yet settled, and of permits on one nonce only the first to land counts: this one could not be paid. Retry once that payment has settled (by ${new Date(held.heldUntilMs).toISOString()} at the latest)`,
              payer: held.payer,
            } satisfies VerifyResponse;
          });
      if (!result.isValid && scope.transportError) throw chainUnavailable(scope.transportError, "verify");
      emit({
        type: "verified",
        network: requirements.network,
        scheme: requirements.scheme,
        valid: result.isValid,
        reason: result.invalidReason,
        durationMs: performance.now() - startedAt,
        requestId: currentRequestId(),
      });
      logger.info(
        {
          op: "verify",
          outcome: result.isValid ? "valid" : "invalid",
          reason: result.invalidReason,
          ...describe(payload, requirements),
          durationMs: Math.round(performance.now() - startedAt),
        },
        "facilitator verify",
      );
      return result;
    } catch (error) {
      const failure =
        error instanceof TollgateError
          ? error
          : isTransportError(error)
            ? chainUnavailable(error, "verify")
            : error;
      logger.warn(
        { op: "verify", outcome: "error", error: String(failure), ...describe(payload, requirements) },
        "facilitator verify",
      );
      throw failure;
    }
  }

  async function settleOnce(
    key: SettlementKey,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
  ): Promise<SettleResponse> {
    const startedAt = performance.now();
    const amountAtomic = BigInt(requirements.amount);
    const begun = await settlementStore.begin(key, amountAtomic);
    // A success the chain no longer holds (its block reorganised away, the nonce unspent) is settled again.
    const reopened =
      !begun.started &&
      begun.existing.status === "succeeded" &&
      (await takenBack(begun.existing.result, payload, requirements)) === "gone" &&
      (await settlementStore.reopen(key, begun.existing.result.transaction));
    if (reopened)
      logger.error(
        {
          op: "settle",
          takenBack: (begun.existing as { result: SettleResponse }).result.transaction,
          ...describe(payload, requirements),
        },
        "facilitator settle: the chain no longer holds this authorization's settlement (its block was reorganised away) and its nonce is unspent; settling it again",
      );
    if (!begun.started && !reopened) {
      const { existing } = begun;
      if (existing.status === "succeeded") {
        // Only the same settlement is answered again: the first settle of an authorization, whoever
        // sent it, must not pass for a later one of another amount.
        const settledAtomic = existing.result.amount;
        if (settledAtomic === undefined || !sameAmount(settledAtomic, amountAtomic)) {
          return refusedSettle(
            payload,
            requirements,
            REASON_SETTLED_DIFFERENTLY,
            `this authorization was already settled for ${settledAtomic ?? "another amount"}, not ${amountAtomic}`,
            { payer: key.payer, settledAmount: settledAtomic },
          );
        }
        logger.info(
          { op: "settle", outcome: "already_settled", ...describe(payload, requirements) },
          "facilitator settle",
        );
        return existing.result;
      }
      return {
        success: false,
        errorReason: "settlement_in_progress",
        transaction: "",
        network: requirements.network,
        payer: key.payer,
      };
    }
    let result: SettleResponse;
    let receipt: TransactionReceipt | undefined;
    // A use held for its permit: given back when the settle sends nothing, kept otherwise (one that
    // throws may have sent its transaction).
    const permitUse = heldPermitUses.get(settlementKeyString(key));
    heldPermitUses.delete(settlementKeyString(key));
    const permitUseCounted = permitUse !== undefined;
    try {
      // The sponsorship checks belong to verify: at settle time a permit may already be used by a
      // concurrent settle of the same payer, and `settleWithPermit` then settles on the allowance it set.
      const settled = await withRpcFailureScope(() =>
        withPayerFunds(key.payer, requirements.asset, amountAtomic, () => core.settle(payload, requirements)),
      );
      result = settled.result;
      if (permitUse && !result.transaction)
        await permitUse
          .giveBack()
          .catch((error: unknown) =>
            logger.warn(
              { payer: key.payer, error: String(error) },
              "facilitator: a sponsored approval that sent nothing could not be given back",
            ),
          );
      if (!result.success && settled.scope.transportError)
        throw chainUnavailable(settled.scope.transportError, "settle");
      // Requests verified together each saw the gas of one settlement: a settlement that failed on a
      // wallet that cannot pay for one failed for the seller's empty wallet, not for its payer.
      // A balance that cannot be read leaves the failure as the settlement told it.
      if (!result.success)
        await ensureGasForSettlement(requirements, true).catch((error: unknown) => {
          if (error instanceof TollgateError && error.code === "TOLLGATE_FACILITATOR_UNAVAILABLE")
            throw error;
        });
      if (result.success && result.transaction) {
        ({ result, receipt } = await confirmTransfer(result, payload, requirements));
        if (result.success)
          emit({
            type: "settled",
            network: requirements.network,
            scheme: requirements.scheme,
            transaction: result.transaction,
            amountAtomic: result.amount ?? requirements.amount,
            requestId: currentRequestId(),
          });
      }
    } catch (error) {
      const failure =
        error instanceof TollgateError
          ? error
          : isTransportError(error)
            ? chainUnavailable(error, "settle")
            : error;
      await settlementStore.fail(key, {
        success: false,
        errorReason: failure instanceof TollgateError ? failure.code : "settle_error",
        transaction: "",
        network: requirements.network,
        payer: key.payer,
      });
      logger.warn(
        { op: "settle", outcome: "error", error: String(failure), ...describe(payload, requirements) },
        "facilitator settle",
      );
      throw failure;
    }
    // A settlement that moved nothing (an upto charge of zero sends no transaction) leaves the
    // authorization free on chain: it is not recorded as its settlement, which may still come.
    if (result.success && result.transaction) {
      try {
        await settlementStore.succeed(key, result);
      } catch (error) {
        // The transfer is made: answering a failure would book a debt its payer has paid. The record
        // stays in flight, so this authorization is never settled again; recovery finds the transfer.
        logger.error(
          { op: "settle", error: String(error), tx: result.transaction, ...describe(payload, requirements) },
          "facilitator settle: the transfer was made but the settlement log could not record it",
        );
      }
    } else await settlementStore.fail(key, result);
    if (result.success && receipt)
      await logSponsoredApproval(payload, requirements, receipt, { counted: permitUseCounted });
    logger.info(
      {
        op: "settle",
        outcome: result.success ? "settled" : "failed",
        reason: result.errorReason,
        ...describe(payload, requirements),
        settledAmount: result.amount ?? requirements.amount,
        tx: result.transaction || undefined,
        durationMs: Math.round(performance.now() - startedAt),
      },
      "facilitator settle",
    );
    return result;
  }

  /** One log line per sponsored approval: the gas the seller paid for it (the settlement included). */
  async function logSponsoredApproval(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    receipt: TransactionReceipt,
    { counted = false }: { counted?: boolean } = {},
  ) {
    const sponsored = sponsoredApprovalOf(payload);
    if (!sponsored) return;
    const erc20Cost = erc20ApprovalCosts.get(receipt.transactionHash.toLowerCase());
    // A settlement sent alone, its payer's approve relayed by an earlier one, sponsored nothing.
    if (erc20Cost?.relayed === false) {
      erc20ApprovalCosts.delete(receipt.transactionHash.toLowerCase());
      return;
    }
    // A relayed approve that needed gas was counted as its gas went out, a permit as its payment was
    // admitted (`relaySponsoredApproval`); any other counts now.
    const sponsoredForPayer = await (counted || (erc20Cost && erc20Cost.fundedWei > 0n)
      ? sponsorship.used(sponsored.info.from)
      : sponsorship.record(sponsored.info.from)
    ).catch((error: unknown) => {
      // The settlement stands; only the count is missing, and the log says so.
      logger.warn(
        { payer: sponsored.info.from, error: String(error) },
        "facilitator: a sponsored approval could not be counted",
      );
      return undefined;
    });
    erc20ApprovalCosts.delete(receipt.transactionHash.toLowerCase());
    const gasCostWei =
      receipt.gasUsed * receipt.effectiveGasPrice +
      // A relayed approve burns the native gas sent to the buyer for it: the funding is the cost, not its gas twice.
      (erc20Cost ? erc20Cost.fundingGasCostWei + erc20Cost.fundedWei : 0n);
    emit({
      type: "sponsored_approval",
      network: requirements.network,
      kind: sponsored.extension,
      payer: sponsored.info.from,
      transaction: receipt.transactionHash,
      gasCostWei,
      requestId: currentRequestId(),
    });
    logger.info(
      {
        requestId: currentRequestId(),
        ...(erc20Cost
          ? {
              // The relayed approve is its own transaction: its gas, and the native gas sent to the buyer for it.
              approveTx: erc20Cost.approveTx,
              approveGasUsed: erc20Cost.approveGasUsed.toString(),
              approveGasCostWei: erc20Cost.approveGasCostWei.toString(),
              fundingTx: erc20Cost.fundingTx,
              fundedWei: erc20Cost.fundedWei.toString(),
              fundingGasCostWei: erc20Cost.fundingGasCostWei.toString(),
            }
          : {}),
        op: "sponsor",
        extension: sponsored.extension,
        payer: sponsored.info.from,
        asset: requirements.asset,
        approvedAtomic: sponsored.info.amount,
        tx: receipt.transactionHash,
        gasUsed: receipt.gasUsed.toString(),
        effectiveGasPriceWei: receipt.effectiveGasPrice.toString(),
        gasCostWei: (receipt.gasUsed * receipt.effectiveGasPrice).toString(),
        sponsoredForPayer,
        perPayerLimit: sponsorship.perPayerLimit,
      },
      "facilitator sponsored approval",
    );
  }

  /**
   * Whether the chain still holds a logged settlement: `held` (or unreadable: the log stands), `pending`
   * (its transaction waits in the mempool again), or `gone` (no such transaction, or it reverted, and the
   * authorization's nonce unspent: nothing moved, and it may be settled again).
   */
  async function takenBack(
    result: SettleResponse,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
  ): Promise<"held" | "pending" | "gone"> {
    if (!result.transaction) return "held";
    const hash = result.transaction as Hex;
    const client = signer.publicClient;
    try {
      const receipt = await client
        .getTransactionReceipt({ hash })
        .catch((error: unknown) =>
          error instanceof TransactionReceiptNotFoundError ? undefined : Promise.reject(error),
        );
      if (receipt?.status === "success") return "held";
      if (receipt === undefined) {
        const sent = await client
          .getTransaction({ hash })
          .catch((error: unknown) =>
            error instanceof TransactionNotFoundError ? undefined : Promise.reject(error),
          );
        if (sent !== undefined) return "pending";
      }
      return (await isAuthorizationSpent(client, payload, requirements.asset)) ? "held" : "gone";
    } catch (error) {
      logger.warn(
        { op: "settle", error: String(error), tx: hash, ...describe(payload, requirements) },
        "facilitator settle: could not read a logged settlement back from the chain; answered as logged",
      );
      return "held";
    }
  }

  async function confirmTransfer(
    result: SettleResponse,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
  ): Promise<{ result: SettleResponse; receipt: TransactionReceipt }> {
    const hash = result.transaction as Hex;
    const receipt = signer.takeReceipt(hash) ?? (await signer.publicClient.getTransactionReceipt({ hash }));
    const payer = settlementKeyOf(payload)?.payer ?? result.payer ?? "";
    const amountAtomic = BigInt(result.amount ?? requirements.amount);
    const found = hasMatchingTransfer({
      logs: receipt.logs,
      asset: getAddress(requirements.asset),
      from: getAddress(payer),
      to: getAddress(requirements.payTo),
      amountAtomic,
    });
    if (found) return { result: { ...result, amount: amountAtomic.toString() }, receipt };
    return { result: { ...result, success: false, errorReason: REASON_TRANSFER_NOT_FOUND }, receipt };
  }

  const settleChannelAction = createChannelSettler({
    settle: (payload, requirements) => core.settle(payload, requirements),
    signer,
    logger,
    chainUnavailable,
    settled: logSponsoredApproval,
  });

  /**
   * Takes the payer's sponsored use for a payment carrying an EIP-2612 permit, before the seller serves
   * it: atomically, so that payments sent at once (to any seller on this facilitator) cannot all pass the
   * count verify made. Held until the payment's settle (`heldPermitUses`). Why it cannot be served, or
   * undefined.
   */
  async function holdPermitUse(
    payload: PaymentPayload,
    payer: string,
    signal: AbortSignal | undefined,
  ): Promise<string | undefined> {
    const key = settlementKeyOf(payload);
    if (!key || !sponsorship.enabled) return undefined;
    const id = settlementKeyString(key);
    if (heldPermitUses.has(id)) return undefined;
    let use: { giveBack(): Promise<void> };
    try {
      use = await sponsorship.take(payer);
    } catch (error) {
      if (!(error instanceof SponsoredApprovalRefused)) throw error;
      logger.warn(
        { requestId: currentRequestId(), payer, reason: error.message },
        "facilitator: sponsored approval refused",
      );
      return error.message;
    }
    // The seller gave up on the request meanwhile: its payment is never settled, and nothing is sent.
    if (signal?.aborted) {
      await use.giveBack().catch(() => undefined);
      return "the sponsored approval is not taken: the request it came with was given up";
    }
    if (heldPermitUses.size >= VERIFIED_APPROVALS_KEPT)
      heldPermitUses.delete(heldPermitUses.keys().next().value as string);
    heldPermitUses.set(id, use);
    return undefined;
  }

  /**
   * Relays a verified payment's signed `approve` (`erc20ApprovalGasSponsoring`) before the seller serves
   * it, funding its gas: a payer that spends that gas on the approve's nonce is then refused, not served
   * for free. Its settlement later goes alone, on the allowance the approve set. Answers why the payment
   * cannot be served, or undefined (nothing to relay, or relayed); throws `TOLLGATE_CHAIN_UNAVAILABLE` when
   * the chain cannot be reached.
   */
  async function relaySponsoredApproval(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    { signal }: { signal?: AbortSignal | undefined } = {},
  ): Promise<string | undefined> {
    const sponsored = sponsoredApprovalOf(payload);
    if (sponsored?.extension === "eip2612GasSponsoring")
      return holdPermitUse(payload, sponsored.info.from, signal);
    if (sponsored?.extension !== "erc20ApprovalGasSponsoring" || !erc20Sponsor) return undefined;
    const approval = (sponsored.info as { signedTransaction?: unknown }).signedTransaction;
    if (typeof approval !== "string") return "the sponsored approval carries no signed transaction";
    // Checked here too: an in-process caller may relay without the HTTP route's verify.
    const mismatch = await approvalMismatch(approval as Hex, {
      payer: payerOf(payload, requirements),
      asset: requirements.asset,
      drawsThroughPermit2: drawsThroughPermit2(payload, requirements),
    });
    if (mismatch) return `the sponsored approval is refused: ${mismatch}`;
    let cost: Erc20ApprovalSponsorship | undefined;
    try {
      cost = await erc20Sponsor.relayApprovalAlone(approval as Hex, BigInt(requirements.amount), signal);
    } catch (error) {
      // An unreachable chain is no refusal of the payer's sponsorship: the seller answers 503, try again.
      if (error instanceof TollgateError) throw error;
      const refused = error instanceof SponsoredApprovalRefused;
      if (!refused && isTransportError(error))
        throw chainUnavailable(error, "the relay of a sponsored approval");
      // The buyer reads Tollgate's words; the chain node's own answer stays in this log.
      const reason = refused
        ? error.message
        : "the sponsored approval is not relayed: this facilitator could not complete it; pay again later, or approve Permit2 from the wallet itself";
      logger.warn(
        {
          requestId: currentRequestId(),
          payer: sponsored.info.from,
          reason,
          error: String(refused ? (error.cause ?? error) : error),
        },
        "facilitator: sponsored approval not relayed",
      );
      return reason;
    }
    if (!cost) return undefined;
    // A relayed approve that needed gas was counted as its gas went out; one that needed none counts now.
    const sponsoredForPayer = await (cost.fundedWei > 0n
      ? sponsorship.used(cost.payer)
      : sponsorship.record(cost.payer)
    ).catch((error: unknown) => {
      // The approve landed; only the count is missing, and the log says so.
      logger.warn(
        { payer: cost.payer, error: String(error) },
        "facilitator: a sponsored approval could not be counted",
      );
      return undefined;
    });
    const gasCostWei = cost.approveGasCostWei + cost.fundingGasCostWei + cost.fundedWei;
    emit({
      type: "sponsored_approval",
      network: requirements.network,
      kind: sponsored.extension,
      payer: sponsored.info.from,
      transaction: cost.approveTx,
      gasCostWei,
      requestId: currentRequestId(),
    });
    logger.info(
      {
        requestId: currentRequestId(),
        op: "sponsor",
        extension: sponsored.extension,
        payer: sponsored.info.from,
        asset: requirements.asset,
        approveTx: cost.approveTx,
        approveGasUsed: cost.approveGasUsed.toString(),
        approveGasCostWei: cost.approveGasCostWei.toString(),
        fundingTx: cost.fundingTx,
        fundedWei: cost.fundedWei.toString(),
        fundingGasCostWei: cost.fundingGasCostWei.toString(),
        gasCostWei: gasCostWei.toString(),
        sponsoredForPayer,
        perPayerLimit: sponsorship.perPayerLimit,
      },
      "facilitator sponsored approval",
    );
    return undefined;
  }

  /**
   * Gives back what a payment verified here holds once its seller drops it unsettled: its EIP-2612
   * permit nonce, for the payer's next payment, and the sponsored use taken for it. Nothing is given
   * back once a settle of it began here: that settle may still land.
   */
  async function release(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
  ): Promise<ReleaseResponse> {
    const key = isBatchSettlementPayment(requirements) ? undefined : settlementKeyOf(payload);
    if (!key) return { released: false, reason: "not_held" };
    const held = permitHolds?.giveUp(permitHolderOf(payload, key)) ?? "not_held";
    let answer: ReleaseResponse;
    // Kept whole while the same payment, verified for another request, may be being served.
    if (held === "settling" || held === "verified_again") answer = { released: false, reason: held };
    else {
      // A settle takes the use as it starts (`settleOnce`): one still held had none begin.
      const use = heldPermitUses.get(settlementKeyString(key));
      heldPermitUses.delete(settlementKeyString(key));
      if (use)
        await use
          .giveBack()
          .catch((error: unknown) =>
            logger.warn(
              { payer: key.payer, error: String(error) },
              "facilitator: a sponsored approval of a released payment could not be given back",
            ),
          );
      answer = held === "released" || use ? { released: true } : { released: false, reason: "not_held" };
    }
    logger.info(
      {
        op: "release",
        outcome: answer.released ? "released" : answer.reason,
        ...describe(payload, requirements),
      },
      "facilitator release",
    );
    return answer;
  }

  return {
    address: signer.address,
    network,
    signer,
    verify,
    release,
    relaySponsoredApproval,
    async settle(payload, requirements) {
      const refusedAsset = assetRefusal(payload, requirements);
      if (refusedAsset) return refusedSettle(payload, requirements, REASON_ASSET_NOT_ACCEPTED, refusedAsset);
      // Its payloads carry no (payer, nonce) authorization and move funds through the channel contract.
      if (isBatchSettlementPayment(requirements)) return settleChannelAction(payload, requirements);
      const key = settlementKeyOf(payload);
      if (!key) {
        return {
          success: false,
          errorReason: REASON_UNKNOWN_PAYLOAD,
          transaction: "",
          network: requirements.network,
        };
      }
      // The settle holds its permit's nonce until it ends, whatever a release says meanwhile. A payment
      // its seller released, whose nonce another now holds (the payer's next payment, verified on that
      // nonce), is not settled: its permit landing first would leave the other, being served, unpaid.
      // One whose hold is merely gone (this process restarted since its verify) was served on it and
      // is settled, as it was before holds: the chain decides between the two.
      const heldByAnother = holdPermitOf(payload, requirements, { settling: true });
      if (heldByAnother && permitHolds?.gaveUp(permitHolderOf(payload, key)))
        return refusedSettle(
          payload,
          requirements,
          ReasonCode.eip2612PermitInFlight,
          `another payment of this payer carrying an EIP-2612 permit on token nonce ${heldByAnother.nonce} holds that nonce (verified and not yet settled), and this one was released by its seller: it is not settled, nothing was sent`,
          { payer: key.payer },
        );
      if (heldByAnother)
        logger.warn(
          { op: "settle", payer: key.payer, nonce: heldByAnother.nonce, ...describe(payload, requirements) },
          "another payment of this payer holds this payment's EIP-2612 permit nonce, and this one was never released here (its hold was lost in a restart): settled all the same",
        );
      // Concurrent settles of one authorization for one amount in this process share one attempt;
      // one for another amount finds it in flight.
      const id = `${settlementKeyString(key)}/${normalizedAmount(requirements.amount)}`;
      const pending = inFlight.get(id);
      if (pending) return pending;
      const attempt = settleOnce(key, payload, requirements).finally(() => inFlight.delete(id));
      inFlight.set(id, attempt);
      // The settlement ended: a permit it held is used or free for the payer's next payment. One that
      // threw (the chain unreachable) or was sent and not mined in time (settlement_pending) may still
      // land, and keeps its hold until it is settled again or its deadline passes.
      if (permitHolds)
        attempt.then(
          (result) => {
            if (
              result.success ||
              (result.errorReason !== "settlement_in_progress" && result.errorReason !== SETTLEMENT_PENDING)
            )
              permitHolds.release(permitHolderOf(payload, key));
          },
          () => undefined,
        );
      return attempt;
    },
    async getSupported() {
      return core.getSupported() as SupportedResponse;
    },
  };
}

/**
 * Who holds a payment's permit nonce: its authorization, as signed. Another payment on the same
 * authorization nonce, signed again, is another holder, and a release must present the payment itself.
 */
function permitHolderOf(payload: PaymentPayload, key: SettlementKey): string {
  const signature = (payload.payload as { signature?: unknown }).signature;
  return `${settlementKeyString(key)}/${typeof signature === "string" ? signature.toLowerCase() : ""}`;
}

/** An atomic amount as written in a request or a result, compared as a number ("0100" is 100). */
function normalizedAmount(amount: string): string {
  return /^[0-9]{1,78}$/.test(amount) ? BigInt(amount).toString() : amount;
}

function sameAmount(amount: string, atomic: bigint): boolean {
  return normalizedAmount(amount) === atomic.toString();
}

/** The wallet a payment draws from: its authorization's signer, or a channel's payer. */
function payerOf(payload: PaymentPayload, requirements: PaymentRequirements): string | undefined {
  return isBatchSettlementPayment(requirements)
    ? channelPayloadSummaryOf(payload).payer
    : settlementKeyOf(payload)?.payer;
}

/** Whether a payment moves its funds through Permit2 (and so may need the payer's approval of it). */
function drawsThroughPermit2(payload: PaymentPayload, requirements: PaymentRequirements): boolean {
  const inner = payload.payload as {
    permit2Authorization?: unknown;
    type?: unknown;
    deposit?: { authorization?: { permit2Authorization?: unknown } };
  };
  if (!isBatchSettlementPayment(requirements)) return inner.permit2Authorization !== undefined;
  return inner.type === "deposit" && inner.deposit?.authorization?.permit2Authorization !== undefined;
}
