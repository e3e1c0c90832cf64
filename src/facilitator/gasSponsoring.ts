import type { PaymentPayload, PaymentRequirements, VerifyResponse } from "@x402/core/types";
import { PERMIT2_ADDRESS } from "@x402/evm";
import {
  EIP2612_GAS_SPONSORING,
  type Eip2612GasSponsoringInfo,
  ERC20_APPROVAL_GAS_SPONSORING,
  type Erc20ApprovalGasSponsoringInfo,
  extractEip2612GasSponsoringInfo,
  extractErc20ApprovalGasSponsoringInfo,
} from "@x402/extensions";
import { type Address, getAddress, type Hex, recoverTypedDataAddress } from "viem";
import type { PayerQuotas } from "../ledger/index.js";
import { ReasonCode } from "../protocol/index.js";

/**
 * A sponsored approval refused or not relayed, in words for its buyer: what happened and what to do.
 * `cause` keeps the chain node's own answer, for the facilitator's log only.
 */
export class SponsoredApprovalRefused extends Error {
  override name = "SponsoredApprovalRefused";
}

/** The gas-sponsoring extensions Tollgate's facilitator can honour. */
export const gasSponsoringExtensionKeys = [
  EIP2612_GAS_SPONSORING.key,
  ERC20_APPROVAL_GAS_SPONSORING.key,
] as const;
export type GasSponsoringExtensionKey = (typeof gasSponsoringExtensionKeys)[number];

/**
 * How much approval gas the facilitator pays for buyers: on or off, and how many approvals per
 * payer (a seller pays for each), counted in the facilitator's `payerQuotas`.
 */
export type GasSponsoringOptions = {
  enabled: boolean;
  /** Sponsored Permit2 approvals one payer may get, of either kind; default 3. */
  perPayerLimit?: number;
  /**
   * Sponsored approvals of all payers together in any 24 h; default none (unbounded). `perPayerLimit`
   * bounds one wallet, and wallets cost nothing to make: this bounds what the operator pays in total.
   */
  dailyLimit?: number | undefined;
  /**
   * Also relay buyers' signed `approve` transactions for tokens without EIP-2612
   * (`erc20ApprovalGasSponsoring`), sending each buyer the gas it burns; default off.
   */
  erc20Approval?: boolean;
};

/** A payment's request for a sponsored Permit2 approval, read with `@x402/extensions`. */
export type SponsoredApproval =
  | { extension: "eip2612GasSponsoring"; info: Eip2612GasSponsoringInfo }
  | { extension: "erc20ApprovalGasSponsoring"; info: Erc20ApprovalGasSponsoringInfo };

/** The gas-sponsoring extension a payment carries, if any. */
export function sponsoredApprovalOf(payload: PaymentPayload): SponsoredApproval | undefined {
  const eip2612 = extractEip2612GasSponsoringInfo(payload);
  if (eip2612) return { extension: "eip2612GasSponsoring", info: eip2612 };
  const erc20 = extractErc20ApprovalGasSponsoringInfo(payload);
  if (erc20) return { extension: "erc20ApprovalGasSponsoring", info: erc20 };
  return undefined;
}

/** The Permit2 amount a payment may move: upto's `permitted.amount` (exact via Permit2 likewise). */
function permittedAmountOf(payload: PaymentPayload): bigint | undefined {
  const authorization = (payload.payload as { permit2Authorization?: { permitted?: { amount?: unknown } } })
    .permit2Authorization;
  const amount = authorization?.permitted?.amount;
  return typeof amount === "string" && /^\d+$/.test(amount) ? BigInt(amount) : undefined;
}

const eip2612PermitTypes = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

/**
 * Checks an EIP-2612 permit beyond what `@x402/evm` checks before its simulation: the approval
 * equals the payment's permitted amount, and the signature is the owner's for the token's domain with its current
 * nonce. Without this, a forged permit fails silently inside `settleWithPermit` and reads as a
 * missing allowance.
 * @see https://eips.ethereum.org/EIPS/eip-2612
 */
export async function checkEip2612Permit({
  info,
  payload,
  requirements,
  chainId,
  readNonce,
}: {
  info: Eip2612GasSponsoringInfo;
  payload: PaymentPayload;
  requirements: PaymentRequirements;
  chainId: number;
  readNonce: (token: Address, owner: Address) => Promise<bigint>;
}): Promise<VerifyResponse | undefined> {
  const payer = info.from;
  const permitted = permittedAmountOf(payload);
  if (!/^\d+$/.test(info.amount) || !/^\d+$/.test(info.nonce) || !/^\d+$/.test(info.deadline))
    return { isValid: false, invalidReason: ReasonCode.eip2612InvalidFormat, payer };
  if (!/^0x[0-9a-fA-F]{40}$/.test(info.spender) || getAddress(info.spender) !== getAddress(PERMIT2_ADDRESS))
    return { isValid: false, invalidReason: ReasonCode.eip2612SpenderNotPermit2, payer };
  // The x402 Permit2 proxies' settleWithPermit requires the permit's value to equal the permitted amount.
  if (permitted !== undefined && BigInt(info.amount) !== permitted) {
    return {
      isValid: false,
      invalidReason: ReasonCode.permit2612AmountMismatch,
      invalidMessage: `the EIP-2612 permit approves ${info.amount}, not the ${permitted} this payment authorizes`,
      payer,
    };
  }
  const name = requirements.extra?.name;
  const version = requirements.extra?.version;
  if (typeof name !== "string" || typeof version !== "string") return undefined;
  let signer: Address;
  try {
    signer = await recoverTypedDataAddress({
      domain: { name, version, chainId, verifyingContract: getAddress(requirements.asset) },
      types: eip2612PermitTypes,
      primaryType: "Permit",
      message: {
        owner: getAddress(info.from),
        spender: getAddress(info.spender),
        value: BigInt(info.amount),
        nonce: BigInt(info.nonce),
        deadline: BigInt(info.deadline),
      },
      signature: info.signature as Hex,
    });
  } catch {
    return { isValid: false, invalidReason: ReasonCode.eip2612PermitInvalid, payer };
  }
  if (signer !== getAddress(info.from)) {
    return {
      isValid: false,
      invalidReason: ReasonCode.eip2612PermitInvalid,
      invalidMessage: "the EIP-2612 permit is not signed by the payer",
      payer,
    };
  }
  const nonce = await readNonce(getAddress(requirements.asset), getAddress(info.from));
  if (nonce !== BigInt(info.nonce)) {
    return {
      isValid: false,
      invalidReason: ReasonCode.eip2612PermitInvalid,
      invalidMessage: `the EIP-2612 permit uses nonce ${info.nonce}; the token expects ${nonce}`,
      payer,
    };
  }
  return undefined;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Counts sponsored approvals per payer, in `quotas` (the ledger's when the facilitator has one), and says
 * whether one more is allowed.
 */
export function createSponsorshipBudget({
  enabled,
  perPayerLimit = 3,
  dailyLimit,
  network,
  quotas,
}: GasSponsoringOptions & { network: string; quotas: PayerQuotas }) {
  const scopeOf = (payer: string) => ({ kind: "sponsored_approval" as const, network, payer });
  /** All payers' sponsored approvals of the last 24 h, counted under one key no address can take. */
  const dayScope = () => ({
    kind: "sponsored_approval" as const,
    network,
    payer: "all payers",
    sinceMs: Date.now() - DAY_MS,
  });
  const limitMessage = (used: number) =>
    `this payer already had ${used} sponsored Permit2 approvals (limit ${perPayerLimit}); approve Permit2 itself`;
  const dailyLimitMessage = (used: number) =>
    `this facilitator sponsored ${used} Permit2 approvals in the last 24 h, its daily limit (${dailyLimit}); approve Permit2 itself, or pay again later`;
  const used = async (payer: string) => (await quotas.uses(scopeOf(payer))).length;
  const usedToday = async () => (await quotas.uses(dayScope())).length;
  return {
    enabled,
    perPayerLimit,
    used,
    /** A refusal when this payer may not have one more sponsored approval. */
    async refusal(payer: string): Promise<VerifyResponse | undefined> {
      if (!enabled)
        return {
          isValid: false,
          invalidReason: ReasonCode.gasSponsoringRefused,
          invalidMessage: "this facilitator does not sponsor Permit2 approvals; approve Permit2 first",
          payer,
        };
      const count = await used(payer);
      if (count >= perPayerLimit)
        return {
          isValid: false,
          invalidReason: ReasonCode.gasSponsoringRefused,
          invalidMessage: limitMessage(count),
          payer,
        };
      const today = dailyLimit === undefined ? 0 : await usedToday();
      if (dailyLimit !== undefined && today >= dailyLimit)
        return {
          isValid: false,
          invalidReason: ReasonCode.gasSponsoringRefused,
          invalidMessage: dailyLimitMessage(today),
          payer,
        };
      return undefined;
    },
    /**
     * Counts one more, as its gas is about to be sent: throws when the payer has had its limit, so that
     * payments sent at once (to any replica on the ledger) cannot all pass the check verify made.
     */
    async take(payer: string): Promise<{ giveBack(): Promise<void> }> {
      const taken = await quotas.take({ ...scopeOf(payer), limit: perPayerLimit, atMs: Date.now() });
      if (!taken.taken)
        throw new SponsoredApprovalRefused(
          `the sponsored approval is refused: ${limitMessage(taken.usedAtMs.length)}`,
        );
      if (dailyLimit === undefined) return { giveBack: () => quotas.giveBack(taken.id) };
      const day = await quotas.take({ ...dayScope(), limit: dailyLimit, atMs: Date.now() });
      if (!day.taken) {
        await quotas.giveBack(taken.id);
        throw new SponsoredApprovalRefused(
          `the sponsored approval is refused: ${dailyLimitMessage(day.usedAtMs.length)}`,
        );
      }
      return {
        giveBack: async () => {
          await quotas.giveBack(taken.id);
          await quotas.giveBack(day.id);
        },
      };
    },
    /** Counts one sponsored after the fact (its gas is spent): how many the payer has had. */
    async record(payer: string): Promise<number> {
      await quotas.take({ ...scopeOf(payer), limit: Number.MAX_SAFE_INTEGER, atMs: Date.now() });
      if (dailyLimit !== undefined)
        await quotas.take({ ...dayScope(), limit: Number.MAX_SAFE_INTEGER, atMs: Date.now() });
      return used(payer);
    },
  };
}
