import { secp256k1 } from "@noble/curves/secp256k1";
import { BATCH_SETTLEMENT_ADDRESS, BATCH_SETTLEMENT_DOMAIN, voucherTypes } from "@x402/evm";
import { concat, getTypesForEIP712Domain, type Hex, hashDomain, hashStruct, keccak256 } from "viem";

const N = secp256k1.CURVE.n;
const HALF_N = N >> 1n;
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
type Point = InstanceType<typeof secp256k1.ProjectivePoint>;

export type CreateVoucherVerifierParameters = {
  chainId: number;
  /** Public keys kept for the payer-authorizers seen last (about 70 KB each once in use); default 512. */
  keysKept?: number;
};

export type VoucherVerifier = {
  /** Whether a voucher is signed by `payerAuthorizer`, in the one form the batch-settlement contract takes. */
  isSigned(payerAuthorizer: string, channelId: Hex, maxClaimableAtomic: bigint, signature: string): boolean;
  /**
   * Marks a payer-authorizer whose voucher was charged: its key's multiples are precomputed (once,
   * ~7 ms, off the request's path), so its later vouchers cost a fast verification.
   */
  trust(payerAuthorizer: string): void;
};

/**
 * Checks voucher signatures locally the way the contract's claim will (OpenZeppelin `ECDSA.tryRecover`):
 * 65 bytes, `v` 27 or 28, `r` in range and `s` in the lower half. A malleated signature (high `s`,
 * `v` of 0 or 1, 64 bytes) recovers the same signer off chain but fails the claim on chain, so it is
 * refused here: serving on it would give inference away and block the claim batch it joins.
 *
 * The first voucher of a payer-authorizer is checked by recovery and its public key is kept, so its
 * next ones cost a verification against the key instead. Once a voucher of it was charged (`trust`),
 * the key's multiples are precomputed and its vouchers cost a fast verification, several times cheaper
 * than a recovery. Keys of payer-authorizers that never paid are kept apart from trusted ones: vouchers
 * signed by throwaway keys cost no more than a recovery each and never push a paying one out.
 */
export function createVoucherVerifier({
  chainId,
  keysKept = 512,
}: CreateVoucherVerifierParameters): VoucherVerifier {
  const domain = {
    ...BATCH_SETTLEMENT_DOMAIN,
    chainId: BigInt(chainId),
    verifyingContract: BATCH_SETTLEMENT_ADDRESS,
  } as const;
  // The contract's domain separator, once (viem's typed-data generics cannot check a domain built here).
  const domainSeparator = hashDomain({
    domain,
    types: { EIP712Domain: getTypesForEIP712Domain({ domain }) },
  } as unknown as Parameters<typeof hashDomain>[0]);
  /** Keys recovered, and keys of payer-authorizers that paid (precomputed); least recently used first. */
  const seen = new Map<string, Point>();
  const trusted = new Map<string, Point>();

  const digestOf = (channelId: Hex, maxClaimableAmount: bigint): Hex =>
    keccak256(
      concat([
        "0x1901",
        domainSeparator,
        hashStruct({ data: { channelId, maxClaimableAmount }, primaryType: "Voucher", types: voucherTypes }),
      ]),
    );

  const keep = (keys: Map<string, Point>, address: string, key: Point) => {
    keys.delete(address);
    if (keys.size >= keysKept) keys.delete(keys.keys().next().value as string);
    keys.set(address, key);
  };

  function isSigned(payerAuthorizer: string, channelId: Hex, maxClaimableAtomic: bigint, signature: string) {
    if (!SIGNATURE.test(signature)) return false;
    const r = BigInt(`0x${signature.slice(2, 66)}`);
    const s = BigInt(`0x${signature.slice(66, 130)}`);
    const v = Number.parseInt(signature.slice(130, 132), 16);
    if ((v !== 27 && v !== 28) || r === 0n || r >= N || s === 0n || s > HALF_N) return false;
    if (maxClaimableAtomic < 0n || maxClaimableAtomic >= 1n << 128n) return false;
    const address = payerAuthorizer.toLowerCase();
    const digest = digestOf(channelId, maxClaimableAtomic);
    const known = trusted.get(address) ?? seen.get(address);
    if (known) {
      // ecrecover(digest, v, r, s) is this key exactly when u1·G + u2·key is the point (r, parity v − 27).
      const z = BigInt(digest) % N;
      const sInverse = invertModN(s);
      const point = secp256k1.ProjectivePoint.BASE.multiplyUnsafe((z * sInverse) % N)
        .add(known.multiplyUnsafe((r * sInverse) % N))
        .toAffine();
      return point.x === r && Number(point.y & 1n) === v - 27;
    }
    let recovered: Point;
    try {
      recovered = new secp256k1.Signature(r, s).addRecoveryBit(v - 27).recoverPublicKey(digest.slice(2));
    } catch {
      return false;
    }
    if (`0x${keccak256(recovered.toRawBytes(false).subarray(1)).slice(-40)}` !== address) return false;
    keep(seen, address, recovered);
    return true;
  }

  function trust(payerAuthorizer: string) {
    const address = payerAuthorizer.toLowerCase();
    const key = trusted.get(address);
    if (key) {
      keep(trusted, address, key);
      return;
    }
    const recovered = seen.get(address);
    if (!recovered) return;
    setImmediate(() => {
      if (!trusted.has(address)) keep(trusted, address, secp256k1.utils.precompute(6, recovered));
      seen.delete(address);
    });
  }

  return { isSigned, trust };
}

/** a⁻¹ mod n by the extended Euclidean algorithm (a in 1..n−1). */
function invertModN(a: bigint): bigint {
  let [low, high, lowCoefficient, highCoefficient] = [a, N, 1n, 0n];
  while (low > 1n) {
    const ratio = high / low;
    [low, high] = [high - low * ratio, low];
    [lowCoefficient, highCoefficient] = [highCoefficient - lowCoefficient * ratio, lowCoefficient];
  }
  return ((lowCoefficient % N) + N) % N;
}
