import { z } from "zod";

const MAX_UINT256 = (1n << 256n) - 1n;

/** An EVM address: `0x` and 40 hex digits, any case (checksums are not enforced here). */
export const addressSchema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, { error: "must be an address: 0x followed by 40 hex digits" })
  .transform((value) => value as `0x${string}`);

/** An unsigned 256-bit integer written as a canonical decimal string (no sign, no leading zeros). */
export const uint256StringSchema = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/, { error: "must be a decimal integer string without leading zeros" })
  // zod runs every check even after the regex fails, so only compare what BigInt can read.
  .refine((value) => !/^[0-9]+$/.test(value) || BigInt(value) <= MAX_UINT256, {
    error: "must fit in uint256",
  });

/** A 32-byte value in hex, e.g. an EIP-3009 nonce. */
export const bytes32Schema = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/, { error: "must be 0x followed by 64 hex digits" })
  .transform((value) => value as `0x${string}`);

/** A non-empty byte string in hex (signatures: 65-byte ECDSA, 64-byte compact, or ERC-1271/6492 blobs). */
export const hexBytesSchema = z
  .string()
  .regex(/^0x(?:[0-9a-fA-F]{2})+$/, {
    error: "must be 0x followed by an even, non-zero number of hex digits",
  })
  .transform((value) => value as `0x${string}`);

/** A CAIP-2 network id, `namespace:reference` (https://chainagnostic.org/CAIPs/caip-2). */
export const caip2NetworkSchema = z
  .string()
  .regex(/^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$/, { error: "must be a CAIP-2 network id such as eip155:137" })
  .transform((value) => value as `${string}:${string}`);

/** A CAIP-2 id in the `eip155` namespace, the only one Tollgate's EVM schemes accept. */
export const evmNetworkSchema = z
  .string()
  .regex(/^eip155:[1-9][0-9]{0,19}$/, { error: "must be an EVM network id such as eip155:137" })
  .transform((value) => value as `eip155:${string}`);
