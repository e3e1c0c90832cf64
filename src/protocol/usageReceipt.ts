import { type Address, type Hex, recoverTypedDataAddress } from "viem";
import { z } from "zod";
import { describeIssue } from "./describeIssue.js";
import { hashUsageReceipt } from "./hashUsageReceipt.js";
import { addressSchema, bytes32Schema, evmNetworkSchema, uint256StringSchema } from "./primitives.js";

/** The key of the settlement response's `extensions` entry holding the usage receipt. */
export const USAGE_RECEIPT_EXTENSION = "tollgate-usage-receipt";

/** `channelId` of a receipt that settles no channel. */
export const NO_CHANNEL_ID: Hex = `0x${"0".repeat(64)}`;

/**
 * The EIP-712 types of Tollgate's usage receipt. A change here is a breaking change: it goes
 * with a new domain `version`. Documented in docs/receipts.md.
 */
export const USAGE_RECEIPT_TYPES = {
  UsageReceipt: [
    { name: "network", type: "string" },
    { name: "resourceUrl", type: "string" },
    { name: "route", type: "string" },
    { name: "model", type: "string" },
    { name: "scheme", type: "string" },
    { name: "asset", type: "address" },
    { name: "payer", type: "address" },
    { name: "payTo", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "usage", type: "Usage[]" },
    { name: "prices", type: "Price[]" },
    { name: "fixedFeeAtomic", type: "uint256" },
    { name: "chargeAtomic", type: "uint256" },
    { name: "maxAtomic", type: "uint256" },
    { name: "transaction", type: "string" },
    { name: "channelId", type: "bytes32" },
    { name: "cumulativeAtomic", type: "uint256" },
    { name: "issuedAt", type: "uint256" },
  ],
  Usage: [
    { name: "unit", type: "string" },
    { name: "amount", type: "uint256" },
  ],
  Price: [
    { name: "unit", type: "string" },
    { name: "perMillionAtomic", type: "uint256" },
  ],
} as const;

const unitSchema = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "a unit name such as input_tokens");

/** The signed statement, exactly as it is signed (numbers as decimal strings, `issuedAt` in Unix seconds). */
export const usageReceiptPayloadSchema = z.strictObject({
  network: evmNetworkSchema,
  resourceUrl: z.string().max(2048),
  route: z.string().max(256),
  model: z.string().max(256),
  scheme: z.string().max(64),
  asset: addressSchema,
  payer: addressSchema,
  payTo: addressSchema,
  nonce: uint256StringSchema,
  usage: z.array(z.strictObject({ unit: unitSchema, amount: uint256StringSchema })).max(32),
  prices: z.array(z.strictObject({ unit: unitSchema, perMillionAtomic: uint256StringSchema })).max(32),
  fixedFeeAtomic: uint256StringSchema,
  chargeAtomic: uint256StringSchema,
  maxAtomic: uint256StringSchema,
  transaction: z.string().max(256),
  channelId: bytes32Schema,
  cumulativeAtomic: uint256StringSchema,
  issuedAt: z.number().int().nonnegative(),
});

export type UsageReceiptPayload = z.infer<typeof usageReceiptPayloadSchema>;

/** A usage receipt as it travels: the payload, and the seller's EIP-712 signature over it. */
export const signedUsageReceiptSchema = z.strictObject({
  format: z.literal("eip712"),
  payload: usageReceiptPayloadSchema,
  signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/, "a 65-byte hex signature"),
});

export type SignedUsageReceipt = z.infer<typeof signedUsageReceiptSchema>;

/** Signs a 32-byte digest: a viem local account's `sign`. */
export type SignHash = (parameters: { hash: Hex }) => Promise<Hex>;

/** The payload as the EIP-712 message: the same fields, with integers as `bigint`. */
export function usageReceiptMessage(payload: UsageReceiptPayload) {
  return {
    ...payload,
    nonce: BigInt(payload.nonce),
    usage: payload.usage.map(({ unit, amount }) => ({ unit, amount: BigInt(amount) })),
    prices: payload.prices.map(({ unit, perMillionAtomic }) => ({
      unit,
      perMillionAtomic: BigInt(perMillionAtomic),
    })),
    fixedFeeAtomic: BigInt(payload.fixedFeeAtomic),
    chargeAtomic: BigInt(payload.chargeAtomic),
    maxAtomic: BigInt(payload.maxAtomic),
    cumulativeAtomic: BigInt(payload.cumulativeAtomic),
    issuedAt: BigInt(payload.issuedAt),
  };
}

/** The EIP-712 domain of a usage receipt: "Tollgate usage receipt", version 1, the chain paid on. */
export function usageReceiptDomain(network: string) {
  const chainId = Number(network.split(":")[1]);
  return { name: "Tollgate usage receipt", version: "1", chainId } as const;
}

/** Signs a usage receipt with the seller's key: its EIP-712 digest (`hashUsageReceipt`). */
export async function signUsageReceipt(
  payload: UsageReceiptPayload,
  sign: SignHash,
): Promise<SignedUsageReceipt> {
  const signature = await sign({ hash: hashUsageReceipt(payload) });
  return { format: "eip712", payload, signature };
}

export type RecoverUsageReceiptSignerReturnType =
  | { ok: true; signer: Address; receipt: SignedUsageReceipt }
  | { ok: false; message: string; field?: string };

/**
 * Checks a usage receipt's shape and recovers the address that signed it. Never throws. Who the
 * signer must be is the caller's question: the address the seller publishes in `/v1/models`.
 */
export async function recoverUsageReceiptSigner(
  value: unknown,
): Promise<RecoverUsageReceiptSignerReturnType> {
  const parsed = signedUsageReceiptSchema.safeParse(value);
  if (!parsed.success) return { ok: false, ...describeIssue(parsed.error, "usage receipt") };
  const receipt = parsed.data;
  try {
    const signer = await recoverTypedDataAddress({
      domain: usageReceiptDomain(receipt.payload.network),
      types: USAGE_RECEIPT_TYPES,
      primaryType: "UsageReceipt",
      message: usageReceiptMessage(receipt.payload),
      signature: receipt.signature as Hex,
    });
    return { ok: true, signer, receipt };
  } catch (error) {
    return {
      ok: false,
      message: `usage receipt: the signature cannot be read (${(error as Error).message})`,
    };
  }
}

/**
 * What the receipt's own usage and prices justify: ceil(Σ amount × perMillionAtomic / 1,000,000)
 * plus the fixed fee, capped at the maximum (Tollgate's charge rule). Units without a price cost nothing.
 */
export function justifiedByUsageReceipt(payload: UsageReceiptPayload): bigint {
  const prices = new Map(payload.prices.map((price) => [price.unit, BigInt(price.perMillionAtomic)]));
  let product = 0n;
  for (const { unit, amount } of payload.usage) product += BigInt(amount) * (prices.get(unit) ?? 0n);
  const charge = (product + 999_999n) / 1_000_000n + BigInt(payload.fixedFeeAtomic);
  const max = BigInt(payload.maxAtomic);
  return charge > max ? max : charge;
}
