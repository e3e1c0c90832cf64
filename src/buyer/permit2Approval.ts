import { PERMIT2_ADDRESS } from "@x402/evm";
import { EIP2612_GAS_SPONSORING, ERC20_APPROVAL_GAS_SPONSORING } from "@x402/extensions";
import { type Address, createPublicClient, erc20Abi, getAddress, http } from "viem";
import { TollgateError } from "../errors/index.js";
import {
  decodePaymentRequiredHeader,
  PAYMENT_REQUIRED_HEADER,
  type PaymentRequirements,
  ReasonCode,
} from "../protocol/index.js";

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
  sellerReason,
}: {
  origin: string;
  offer: PaymentRequirements;
  payer: string;
  /** Gas-sponsoring extensions the seller declared. */
  sponsored: readonly string[];
  /** Whether this buyer can sign a sponsored approval (it has an RPC URL). */
  canSponsor: boolean;
  /** The seller's refusal, when there was one. */
  sellerReason?: string | undefined;
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
    shortMessage: sellerReason ? `${shortMessage} (the seller said: ${sellerReason})` : shortMessage,
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

/**
 * The seller's reason (up to 300 characters), when its 402 to a paid request says the payer's
 * Permit2 allowance is missing or its approval was not sponsored; undefined for any other 402.
 */
export function permit2Refusal(response: Response): string | undefined {
  const refusal = decodePaymentRequiredHeader(response.headers.get(PAYMENT_REQUIRED_HEADER));
  const reason = refusal.ok ? (refusal.paymentRequired.error ?? "") : "";
  return reason.startsWith(ReasonCode.permit2AllowanceRequired) ||
    reason.startsWith(ReasonCode.gasSponsoringRefused)
    ? reason.slice(0, 300)
    : undefined;
}
