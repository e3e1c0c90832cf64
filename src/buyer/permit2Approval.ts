import { PERMIT2_ADDRESS } from "@x402/evm";
import {
  EIP2612_GAS_SPONSORING,
  ERC20_APPROVAL_GAS_SPONSORING,
  extractEip2612GasSponsoringInfo,
  validateEip2612GasSponsoringInfo,
} from "@x402/extensions";
import { type Address, createPublicClient, erc20Abi, getAddress, type Hex, http, maxUint256 } from "viem";
import { TollgateError } from "../errors/index.js";
import type { PaymentPayload, PaymentRequirements } from "../protocol/index.js";

/** How much a gas-sponsored EIP-2612 permit approves Permit2 for. */
export type Permit2Approval = "unlimited" | "per-request";

/** The gas-sponsoring extensions a 402 declares. */
export function declaredSponsoring(extensions: Record<string, unknown> | undefined): string[] {
  if (!extensions) return [];
  return [EIP2612_GAS_SPONSORING.key, ERC20_APPROVAL_GAS_SPONSORING.key].filter((key) => key in extensions);
}

/** True when an offer settles through Permit2 (and so needs the token's allowance to Permit2). */
export function settlesViaPermit2(offer: PaymentRequirements): boolean {
  return (
    offer.scheme === "upto" || (offer.scheme === "exact" && offer.extra?.assetTransferMethod === "permit2")
  );
}

type TypedDataSigner = {
  address: Address;
  signTypedData(parameters: {
    domain: Record<string, unknown>;
    types: Record<string, unknown>;
    primaryType: string;
    message: Record<string, unknown>;
  }): Promise<Hex>;
};

const permitTypes = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
};

/**
 * `@x402/evm` signs a gas-sponsored permit for this one payment's amount, so the next payment
 * would need another. With `unlimited`, the same permit (same nonce and deadline) is signed
 * again for the largest amount, as `erc20ApprovalGasSponsoring` always approves: later payments
 * then find the allowance and carry no permit. Permit2 still moves nothing without a signed
 * authorization per payment.
 * @see https://eips.ethereum.org/EIPS/eip-2612
 */
export async function widenSponsoredPermit(
  payload: PaymentPayload,
  offer: PaymentRequirements,
  signer: TypedDataSigner,
): Promise<PaymentPayload> {
  const info = extractEip2612GasSponsoringInfo(
    payload as Parameters<typeof extractEip2612GasSponsoringInfo>[0],
  );
  const name = offer.extra?.name;
  const version = offer.extra?.version;
  if (!info || typeof name !== "string" || typeof version !== "string") return payload;
  const chainId = Number(offer.network.split(":")[1]);
  const signature = await signer.signTypedData({
    domain: { name, version, chainId, verifyingContract: getAddress(offer.asset) },
    types: permitTypes,
    primaryType: "Permit",
    message: {
      owner: getAddress(info.from),
      spender: getAddress(PERMIT2_ADDRESS),
      value: maxUint256,
      nonce: BigInt(info.nonce),
      deadline: BigInt(info.deadline),
    },
  });
  const widened = { ...info, amount: maxUint256.toString(), signature };
  if (!validateEip2612GasSponsoringInfo(widened)) return payload;
  const extensions = payload.extensions ?? {};
  return {
    ...payload,
    extensions: {
      ...extensions,
      [EIP2612_GAS_SPONSORING.key]: {
        ...(extensions[EIP2612_GAS_SPONSORING.key] as Record<string, unknown>),
        info: widened,
      },
    },
  };
}

/** The owner's allowance of `token` to Permit2, read from the chain. */
export async function readPermit2Allowance(rpcUrl: string, token: Address, owner: Address): Promise<bigint> {
  const client = createPublicClient({ transport: http(rpcUrl, { timeout: 10_000, retryCount: 1 }) });
  return client.readContract({
    address: token,
    abi: erc20Abi,
    functionName: "allowance",
    args: [owner, getAddress(PERMIT2_ADDRESS)],
  });
}

/**
 * The sentence for a wallet that cannot pay because Permit2 may not spend its token: what to do,
 * not the seller's JSON.
 */
export function permit2AllowanceError({
  origin,
  offer,
  payer,
  sponsored,
  canSponsor,
}: {
  origin: string;
  offer: PaymentRequirements;
  payer: string;
  /** Gas-sponsoring extensions the seller declared. */
  sponsored: readonly string[];
  /** Whether this buyer can sign a sponsored approval (it has an RPC URL). */
  canSponsor: boolean;
}): TollgateError {
  const approve = `approve Permit2 (${PERMIT2_ADDRESS}) to spend token ${offer.asset} on ${offer.network} from ${payer} (an on-chain transaction, which needs native gas)`;
  const shortMessage =
    sponsored.length > 0 && !canSponsor
      ? `${origin} sponsors the Permit2 approval (${sponsored.join(", ")}), but this buyer cannot read its allowance: give it the chain's RPC URL (rpcUrl, or --rpc) so it signs a gas-sponsored approval, or ${approve}`
      : sponsored.length > 0
        ? `${origin} refused the gas-sponsored Permit2 approval of this wallet: ${approve}, or use a seller that sponsors more approvals`
        : `this wallet has not approved Permit2 and ${origin} does not sponsor the approval: ${approve}, or use a seller that sponsors it (eip2612GasSponsoring)`;
  return new TollgateError({
    code: "TOLLGATE_PAYMENT_REQUIRED",
    shortMessage,
    details: {
      origin,
      asset: offer.asset,
      network: offer.network,
      payer,
      permit2: PERMIT2_ADDRESS,
      sponsored,
    },
  });
}
