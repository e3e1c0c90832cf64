import { createReceiptEIP712, type SignTypedDataFn } from "@x402/extensions/offer-receipt";
import type { Address, Hex } from "viem";
import { privateKeyAccount } from "../chain/index.js";
import {
  NO_CHANNEL_ID,
  type SignedReceipts,
  signedReceiptExtensions,
  signUsageReceipt,
  type UsageReceiptPayload,
} from "../protocol/index.js";

/** What a settled request came to, as the seller states it in its signed receipts. */
export type ReceiptFacts = Omit<UsageReceiptPayload, "issuedAt" | "channelId" | "cumulativeAtomic"> & {
  /** A payment channel's id and its cumulative charged amount, for a channel payment. */
  channelId?: Hex | undefined;
  cumulativeAtomic?: string | undefined;
};

/** Signs the receipts of settled requests with the seller's key. */
export type ReceiptSigner = {
  /** The address buyers check signatures against; published in `GET /v1/models`. */
  readonly address: Address;
  /** Both receipts (x402 offer-and-receipt, Tollgate usage) as settlement-response `extensions`. */
  sign(facts: ReceiptFacts): Promise<Record<string, unknown>>;
  /** Both receipts as objects. */
  signReceipts(facts: ReceiptFacts): Promise<SignedReceipts>;
};

export type CreateReceiptSignerParameters = {
  /** The seller's receipt key (hex). */
  privateKey: Hex;
  /** Unix seconds; default now. */
  now?: () => number;
};

/**
 * The seller's receipt signer: the x402 offer-and-receipt receipt in EIP-712 form (through
 * `@x402/extensions/offer-receipt`, transaction included) and Tollgate's usage receipt (see
 * docs/receipts.md), both signed by one key.
 * @example
 * const signer = createReceiptSigner({ privateKey });
 * settlement.extensions = await signer.sign(facts);
 */
export function createReceiptSigner({
  privateKey,
  now = () => Math.floor(Date.now() / 1000),
}: CreateReceiptSignerParameters): ReceiptSigner {
  // libsecp256k1: two receipts a request, each a quarter of the time viem's own signer takes.
  const account = privateKeyAccount(privateKey);
  const signTypedData = ((parameters) => account.signTypedData(parameters as never)) as SignTypedDataFn;
  const signReceipts = async (facts: ReceiptFacts): Promise<SignedReceipts> => {
    const { channelId = NO_CHANNEL_ID, cumulativeAtomic = "0", ...rest } = facts;
    const [offerReceipt, usageReceipt] = await Promise.all([
      createReceiptEIP712(
        {
          resourceUrl: facts.resourceUrl,
          payer: facts.payer,
          network: facts.network,
          transaction: facts.transaction || undefined,
        },
        signTypedData,
      ),
      signUsageReceipt({ ...rest, channelId, cumulativeAtomic, issuedAt: now() }, account.sign),
    ]);
    return { offerReceipt, usageReceipt };
  };
  return {
    address: account.address,
    signReceipts,
    async sign(facts) {
      return signedReceiptExtensions(await signReceipts(facts));
    },
  };
}
