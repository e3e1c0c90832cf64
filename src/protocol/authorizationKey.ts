import { isPermit2Payload } from "./schemePayloads.js";
import type { DecodedPaymentPayload } from "./types.js";

/** Identifies one signed authorization; each may be claimed and settled at most once. */
export type AuthorizationKey = {
  network: `eip155:${string}`;
  /** The signer, lower-cased. */
  payer: `0x${string}`;
  /** The Permit2 nonce, or the EIP-3009 bytes32 nonce read as an integer, in decimal. */
  nonce: string;
};

/**
 * The ledger key of a payment: (network, payer, nonce). `upto` and `exact`-via-Permit2 use the
 * Permit2 nonce; `exact`-via-EIP-3009 uses its bytes32 nonce, written in decimal too so every
 * key has one shape.
 * @example
 * const { network, payer, nonce } = authorizationKey(decoded.payload);
 */
export function authorizationKey(payment: DecodedPaymentPayload): AuthorizationKey {
  const network = payment.accepted.network;
  const payload = payment.payload;
  if (isPermit2Payload(payload)) {
    const { from, nonce } = payload.permit2Authorization;
    return { network, payer: lower(from), nonce: BigInt(nonce).toString() };
  }
  const { from, nonce } = payload.authorization;
  return { network, payer: lower(from), nonce: BigInt(nonce).toString() };
}

function lower(address: `0x${string}`): `0x${string}` {
  return address.toLowerCase() as `0x${string}`;
}
