import {
  type EIP712SignedReceipt,
  OFFER_RECEIPT,
  type ReceiptPayload,
  verifyReceiptSignatureEIP712,
} from "@x402/extensions/offer-receipt";
import { type Address, isAddressEqual } from "viem";
import {
  justifiedByUsageReceipt,
  recoverUsageReceiptSigner,
  type SignedUsageReceipt,
  USAGE_RECEIPT_EXTENSION,
} from "./usageReceipt.js";

/** The two statements a seller signs for a settled request. */
export type SignedReceipts = {
  /** The x402 offer-and-receipt receipt (EIP-712): who paid, for what resource, in which transaction. */
  offerReceipt: EIP712SignedReceipt;
  /** Tollgate's usage receipt: what was used, at what prices, what that came to. */
  usageReceipt: SignedUsageReceipt;
};

/**
 * The `extensions` of a settlement response carrying both receipts, where x402's offer-and-receipt
 * extension places its receipt (`extensions["offer-receipt"].info.receipt`) and Tollgate's beside it.
 */
export function signedReceiptExtensions(receipts: SignedReceipts): Record<string, unknown> {
  return {
    [OFFER_RECEIPT]: { info: { receipt: receipts.offerReceipt } },
    [USAGE_RECEIPT_EXTENSION]: { info: { receipt: receipts.usageReceipt } },
  };
}

/** The receipts found in a settlement response's `extensions`, unchecked. */
export function signedReceiptsOf(extensions: unknown): { offerReceipt: unknown; usageReceipt: unknown } {
  const receiptIn = (key: string): unknown => {
    if (typeof extensions !== "object" || extensions === null) return undefined;
    const entry = (extensions as Record<string, unknown>)[key] as
      | { info?: { receipt?: unknown } }
      | undefined;
    return typeof entry === "object" && entry !== null ? entry.info?.receipt : undefined;
  };
  return { offerReceipt: receiptIn(OFFER_RECEIPT), usageReceipt: receiptIn(USAGE_RECEIPT_EXTENSION) };
}

/** What the buyer knows independently of the receipts; each given field must match them. */
export type ReceiptExpectations = {
  /** The receipt key the seller publishes in `/v1/models`. */
  signer?: string | undefined;
  payer?: string | undefined;
  network?: string | undefined;
  payTo?: string | undefined;
  asset?: string | undefined;
  /** The authorization's nonce (decimal, or 0x hex for EIP-3009). */
  nonce?: string | undefined;
  transaction?: string | undefined;
  /** The settled amount the settlement response states. */
  chargeAtomic?: bigint | undefined;
  /** The maximum the buyer signed: the receipt's maximum may not exceed it. */
  maxAtomic?: bigint | undefined;
  /** Both receipts must be there (default true); false checks whichever was given. */
  requireBoth?: boolean | undefined;
};

/**
 * - `verified`: both signatures hold, by the expected signer, and every expectation matches;
 * - `unconfirmed`: both hold and agree, but no expected signer was given to compare with;
 * - `invalid`: a signature fails, the two disagree, or an expectation is not met (see `problems`);
 * - `absent`: the response carried neither receipt.
 */
export type ReceiptCheckStatus = "verified" | "unconfirmed" | "invalid" | "absent";

export type CheckSignedReceiptsReturnType = {
  status: ReceiptCheckStatus;
  /** The address that signed (the usage receipt's, else the x402 receipt's). */
  signer: Address | undefined;
  offerReceipt: ReceiptPayload | undefined;
  usageReceipt: SignedUsageReceipt | undefined;
  /** Why the receipts are not `verified`; empty when they are. */
  problems: string[];
  /** What the usage receipt's own usage and prices justify (its charge should not exceed it). */
  justifiedAtomic: bigint | undefined;
  /** The seller's signed charge above what its own signed usage justifies: its statement proves this overcharge. */
  overchargeAtomic: bigint | undefined;
};

/**
 * Checks both signed receipts of a settlement: the x402 receipt with the official
 * `verifyReceiptSignatureEIP712`, the usage receipt with viem; that one key signed both, that
 * they agree with each other and with what the buyer knows. Never throws.
 */
export async function checkSignedReceipts(
  extensions: unknown,
  expected: ReceiptExpectations = {},
): Promise<CheckSignedReceiptsReturnType> {
  const found = signedReceiptsOf(extensions);
  const problems: string[] = [];
  const result: CheckSignedReceiptsReturnType = {
    status: "absent",
    signer: undefined,
    offerReceipt: undefined,
    usageReceipt: undefined,
    problems,
    justifiedAtomic: undefined,
    overchargeAtomic: undefined,
  };
  if (found.offerReceipt === undefined && found.usageReceipt === undefined) return result;

  let offerSigner: Address | undefined;
  const requireBoth = expected.requireBoth ?? true;
  if (found.offerReceipt === undefined) {
    if (requireBoth) problems.push("the x402 receipt (offer-receipt) is missing");
  } else {
    try {
      const verified = await verifyReceiptSignatureEIP712(found.offerReceipt as EIP712SignedReceipt);
      offerSigner = verified.signer;
      result.offerReceipt = verified.payload;
    } catch (error) {
      problems.push(`x402 receipt: the signature cannot be checked (${(error as Error).message})`);
    }
  }
  let usageSigner: Address | undefined;
  if (found.usageReceipt === undefined) {
    if (requireBoth) problems.push("the usage receipt is missing");
  } else {
    const recovered = await recoverUsageReceiptSigner(found.usageReceipt);
    if (recovered.ok) {
      usageSigner = recovered.signer;
      result.usageReceipt = recovered.receipt;
    } else problems.push(recovered.message);
  }
  result.signer = usageSigner ?? offerSigner;
  if (offerSigner && usageSigner && !isAddressEqual(offerSigner, usageSigner)) {
    problems.push(`the two receipts have different signers (${offerSigner}, ${usageSigner})`);
  }
  if (expected.signer) {
    for (const [name, signer] of [
      ["x402 receipt", offerSigner],
      ["usage receipt", usageSigner],
    ] as const) {
      if (signer && !sameAddress(signer, expected.signer))
        problems.push(
          `${name}: signed by ${signer}, not by the seller's published receipt key ${expected.signer}`,
        );
    }
  }

  const offer = result.offerReceipt;
  const usage = result.usageReceipt?.payload;
  const compare = (
    what: string,
    stated: string | undefined,
    wanted: string | undefined,
    addresses = false,
  ) => {
    if (stated === undefined || wanted === undefined) return;
    const same = addresses ? sameAddress(stated, wanted) : stated === wanted;
    if (!same) problems.push(`${what} is ${stated || "(empty)"}, expected ${wanted || "(empty)"}`);
  };
  if (offer && usage) {
    compare("the two receipts' payer", offer.payer, usage.payer, true);
    compare("the two receipts' network", offer.network, usage.network);
    compare("the two receipts' transaction", offer.transaction, usage.transaction);
    compare("the two receipts' resourceUrl", offer.resourceUrl, usage.resourceUrl);
  }
  for (const [name, payload] of [
    ["x402 receipt", offer],
    ["usage receipt", usage],
  ] as const) {
    compare(`${name}: payer`, payload?.payer, expected.payer, true);
    compare(`${name}: network`, payload?.network, expected.network);
    compare(`${name}: transaction`, payload?.transaction, expected.transaction);
  }
  if (usage) {
    compare("usage receipt: payTo", usage.payTo, expected.payTo, true);
    compare("usage receipt: asset", usage.asset, expected.asset, true);
    compare("usage receipt: nonce", usage.nonce, decimalNonce(expected.nonce));
    compare("usage receipt: chargeAtomic", usage.chargeAtomic, expected.chargeAtomic?.toString());
    const charge = BigInt(usage.chargeAtomic);
    const max = BigInt(usage.maxAtomic);
    if (charge > max) problems.push(`usage receipt: chargeAtomic ${charge} exceeds its maxAtomic ${max}`);
    if (expected.maxAtomic !== undefined && max > expected.maxAtomic)
      problems.push(`usage receipt: maxAtomic ${max} exceeds the signed maximum ${expected.maxAtomic}`);
    result.justifiedAtomic = justifiedByUsageReceipt(usage);
    if (charge > result.justifiedAtomic) result.overchargeAtomic = charge - result.justifiedAtomic;
  }
  result.status = problems.length > 0 ? "invalid" : expected.signer ? "verified" : "unconfirmed";
  return result;
}

function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** An EIP-3009 nonce is bytes32 hex; the receipt states every nonce as a uint256 in decimal. */
function decimalNonce(nonce: string | undefined): string | undefined {
  if (nonce === undefined) return undefined;
  try {
    return BigInt(nonce).toString();
  } catch {
    return nonce;
  }
}
