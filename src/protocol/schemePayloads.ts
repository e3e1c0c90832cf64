import { z } from "zod";
import { addressSchema, bytes32Schema, hexBytesSchema, uint256StringSchema } from "./primitives.js";

const permittedSchema = z.looseObject({
  token: addressSchema,
  amount: uint256StringSchema,
});

/**
 * The `upto` scheme's payload: a Permit2 `PermitWitnessTransferFrom` whose witness binds the
 * recipient and the one facilitator allowed to settle.
 * @see https://github.com/x402-foundation/x402/blob/main/specs/schemes/upto/scheme_upto_evm.md
 */
export const uptoPermit2PayloadSchema = z.looseObject({
  signature: hexBytesSchema,
  permit2Authorization: z.looseObject({
    from: addressSchema,
    permitted: permittedSchema,
    spender: addressSchema,
    nonce: uint256StringSchema,
    deadline: uint256StringSchema,
    witness: z.looseObject({
      to: addressSchema,
      facilitator: addressSchema,
      validAfter: uint256StringSchema,
    }),
  }),
});

/** The `exact` scheme's Permit2 payload: like `upto`, without a facilitator in the witness. */
export const exactPermit2PayloadSchema = z.looseObject({
  signature: hexBytesSchema,
  permit2Authorization: z.looseObject({
    from: addressSchema,
    permitted: permittedSchema,
    spender: addressSchema,
    nonce: uint256StringSchema,
    deadline: uint256StringSchema,
    witness: z.looseObject({
      to: addressSchema,
      validAfter: uint256StringSchema,
    }),
  }),
});

/**
 * The `exact` scheme's EIP-3009 payload: a signed `transferWithAuthorization` (USDC and kin).
 * @see https://eips.ethereum.org/EIPS/eip-3009
 */
export const exactEip3009PayloadSchema = z.looseObject({
  signature: hexBytesSchema,
  authorization: z.looseObject({
    from: addressSchema,
    to: addressSchema,
    value: uint256StringSchema,
    validAfter: uint256StringSchema,
    validBefore: uint256StringSchema,
    nonce: bytes32Schema,
  }),
});

export type UptoPermit2Payload = z.infer<typeof uptoPermit2PayloadSchema>;
export type ExactPermit2Payload = z.infer<typeof exactPermit2PayloadSchema>;
export type ExactEip3009Payload = z.infer<typeof exactEip3009PayloadSchema>;
export type ExactPayload = ExactPermit2Payload | ExactEip3009Payload;

/** True when a payload is a Permit2 authorization (`upto`, or `exact` via Permit2) rather than EIP-3009. */
export function isPermit2Payload(
  payload: UptoPermit2Payload | ExactPayload,
): payload is UptoPermit2Payload | ExactPermit2Payload {
  return "permit2Authorization" in payload;
}
