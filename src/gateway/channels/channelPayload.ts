import { isAddress } from "viem";
import { z } from "zod";
import type { ChannelConfigRecord } from "../../ledger/index.js";

// A mixed-case address must carry its EIP-55 checksum: the channel id is hashed from it.
const address = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, "an EVM address")
  .refine(
    (value) => isAddress(value, { strict: true }),
    "an EVM address whose mixed case is not its EIP-55 checksum; send it in lower case or checksummed",
  ) as unknown as z.ZodType<`0x${string}`>;
const bytes32 = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/, "32 bytes of hex") as unknown as z.ZodType<`0x${string}`>;
const signature = z
  .string()
  .regex(/^0x[0-9a-fA-F]+$/, "a hex signature") as unknown as z.ZodType<`0x${string}`>;
const uint128 = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,38})$/, "a decimal integer string")
  .transform((value) => BigInt(value))
  .refine((value) => value < 1n << 128n, "at most 2^128 - 1");

const channelConfigSchema = z.object({
  payer: address,
  payerAuthorizer: address,
  receiver: address,
  receiverAuthorizer: address,
  token: address,
  // The contract keeps the delay as a uint40.
  withdrawDelay: z
    .number()
    .int()
    .nonnegative()
    .max(2 ** 40 - 1, "at most 2^40 - 1 seconds (the contract's uint40)"),
  salt: bytes32,
});

const voucherSchema = z.object({
  channelId: bytes32,
  maxClaimableAmount: uint128,
  signature,
});

/** A batch-settlement payload the gateway accepts from a buyer: a deposit, a voucher, or a refund request. */
export const channelPayloadSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("deposit"),
    channelConfig: channelConfigSchema,
    voucher: voucherSchema,
    deposit: z.object({ amount: uint128, authorization: z.record(z.string(), z.unknown()) }),
  }),
  z.object({ type: z.literal("voucher"), channelConfig: channelConfigSchema, voucher: voucherSchema }),
  z.object({
    type: z.literal("refund"),
    channelConfig: channelConfigSchema,
    voucher: voucherSchema,
    amount: uint128.optional(),
  }),
]);

export type ChannelPayload = z.infer<typeof channelPayloadSchema>;

/** The channel config of a payload as the ledger keeps it. */
export function channelConfigOf(payload: ChannelPayload): ChannelConfigRecord {
  return { ...payload.channelConfig };
}

/** The larger of two amounts. */
export function largerOf(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** The smaller of two bigints. */
export function smallerOf(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
