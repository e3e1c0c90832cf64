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

/** Whether a voucher is signed by `payerAuthorizer`, in the one form the batch-settlement contract takes. */
export type VoucherVerifier = (
  payerAuthorizer: string,
  channelId: Hex,
  maxClaimableAtomic: bigint,
  signature: string,
) => boolean;

/**
 * Checks voucher signatures locally the way the contract's claim will (OpenZeppelin `ECDSA.tryRecover`):
 * 65 bytes, `v` 27 or 28, `r` in range and `s` in the lower half. A malleated signature (high `s`,
 * `v` of 0 or 1, 64 bytes) recovers the same signer off chain but fails the claim on chain, so it is
 * refused here: serving on it would give inference away and block the claim batch it joins.
 *
 * The first voucher of a payer-authorizer is checked by recovery and its public key is kept; from its
 * second voucher on, the key's multiples are precomputed (once, ~7 ms), so each voucher after costs a
 * verification against it: several times cheaper than a recovery. A key is only precomputed for a
 * payer-authorizer that signed twice, so vouchers of throwaway keys cost no more than a recovery.
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
  /** Kept keys, least recently used first; `fast` once its multiples are precomputed. */
  const keys = new Map<string, { key: Point; fast: boolean }>();

  const digestOf = (channelId: Hex, maxClaimableAmount: bigint): Hex =>
    keccak256(
      concat([
        "0x1901",
        domainSeparator,
        hashStruct({ data: { channelId, maxClaimableAmount }, primaryType: "Voucher", types: voucherTypes }),
      ]),
    );

  const keep = (address: string, entry: { key: Point; fast: boolean }) => {
    keys.delete(address);
    if (keys.size >= keysKept) keys.delete(keys.keys().next().value as string);
    keys.set(address, entry);
  };

  return (payerAuthorizer, channelId, maxClaimableAtomic, signature) => {
    if (!SIGNATURE.test(signature)) return false;
    const r = BigInt(`0x${signature.slice(2, 66)}`);
    const s = BigInt(`0x${signature.slice(66, 130)}`);
    const v = Number.parseInt(signature.slice(130, 132), 16);
    if ((v !== 27 && v !== 28) || r === 0n || r >= N || s === 0n || s > HALF_N) return false;
    if (maxClaimableAtomic < 0n || maxClaimableAtomic >= 1n << 128n) return false;
    const address = payerAuthorizer.toLowerCase();
    const digest = digestOf(channelId, maxClaimableAtomic);
    const kept = keys.get(address);
    if (kept) {
      // ecrecover(digest, v, r, s) is this key exactly when u1·G + u2·key is the point (r, parity v − 27).
      const z = BigInt(digest) % N;
      const sInverse = invertModN(s);
      const point = secp256k1.ProjectivePoint.BASE.multiplyUnsafe((z * sInverse) % N)
        .add(kept.key.multiplyUnsafe((r * sInverse) % N))
        .toAffine();
      const signed = point.x === r && Number(point.y & 1n) === v - 27;
      if (signed)
        keep(address, kept.fast ? kept : { key: secp256k1.utils.precompute(6, kept.key), fast: true });
      return signed;
    }
    let recovered: Point;
    try {
      recovered = new secp256k1.Signature(r, s).addRecoveryBit(v - 27).recoverPublicKey(digest.slice(2));
    } catch {
      return false;
    }
    if (`0x${keccak256(recovered.toRawBytes(false).subarray(1)).slice(-40)}` !== address) return false;
    keep(address, { key: recovered, fast: false });
    return true;
  };
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
