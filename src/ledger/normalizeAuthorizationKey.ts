import { TollgateError } from "../errors/index.js";

/**
 * The key of one signed authorization as the ledger accepts it: (CAIP-2 network, payer, nonce); each may be
 * claimed and settled only once. The protocol's `AuthorizationKey` (from `authorizationKey(payload)`) fits.
 */
export type AuthorizationKeyInput = {
  /** CAIP-2, e.g. `eip155:137`. */
  network: string;
  /** An EVM address; stored lower-case. */
  payer: string;
  /**
   * The Permit2 uint256 nonce, or EIP-3009's bytes32 nonce: a bigint, a decimal string or 0x-hex.
   * Stored as a canonical decimal string, so one nonce has one key however it was written.
   */
  nonce: string | bigint;
};

/** An authorization key in its stored form: payer lower-case, nonce canonical decimal. */
export type NormalizedAuthorizationKey = {
  network: string;
  payer: string;
  nonce: string;
};

const UINT256_LIMIT = 1n << 256n;

/** Canonical stored form of a key; throws TOLLGATE_LEDGER_FAILED naming the field that is malformed. */
export function normalizeAuthorizationKey({
  network,
  payer,
  nonce,
}: AuthorizationKeyInput): NormalizedAuthorizationKey {
  if (!/^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$/.test(network)) throw malformed("network", network);
  return { network, payer: normalizePayer(payer), nonce: normalizeNonce(nonce) };
}

/** Lower-cases an EVM address after checking its shape. */
export function normalizePayer(payer: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(payer)) throw malformed("payer", payer);
  return payer.toLowerCase();
}

/** A uint256 nonce (bigint, decimal, or 0x-hex such as EIP-3009's bytes32) as a canonical decimal string. */
export function normalizeNonce(nonce: string | bigint): string {
  let value: bigint;
  if (typeof nonce === "bigint") value = nonce;
  else if (/^[0-9]{1,78}$/.test(nonce) || /^0x[0-9a-fA-F]{1,64}$/.test(nonce)) value = BigInt(nonce);
  else throw malformed("nonce", nonce);
  if (value < 0n || value >= UINT256_LIMIT) throw malformed("nonce", nonce.toString());
  return value.toString(10);
}

function malformed(field: string, value: string): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_LEDGER_FAILED",
    shortMessage: `ledger key field ${field} is malformed`,
    details: { field, value },
  });
}
