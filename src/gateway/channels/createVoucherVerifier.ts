import { BATCH_SETTLEMENT_ADDRESS, BATCH_SETTLEMENT_DOMAIN, voucherTypes } from "@x402/evm";
import { recover } from "tiny-secp256k1";
import {
  getTypesForEIP712Domain,
  type Hex,
  hashDomain,
  hexToBytes,
  keccak256,
  numberToBytes,
  toHex,
} from "viem";

/** The order of secp256k1's group. */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = N >> 1n;
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
const CHANNEL_ID = /^0x[0-9a-fA-F]{64}$/;

export type CreateVoucherVerifierParameters = {
  chainId: number;
};

export type VoucherVerifier = {
  /** Whether a voucher is signed by `payerAuthorizer`, in the one form the batch-settlement contract takes. */
  isSigned(payerAuthorizer: string, channelId: Hex, maxClaimableAtomic: bigint, signature: string): boolean;
};

/**
 * Checks voucher signatures locally the way the contract's claim will (OpenZeppelin `ECDSA.tryRecover`):
 * 65 bytes, `v` 27 or 28, `r` in range and `s` in the lower half. A malleated signature (high `s`,
 * `v` of 0 or 1, 64 bytes) recovers the same signer off chain but fails the claim on chain, so it is
 * refused here: serving on it would give inference away and block the claim batch it joins.
 *
 * The signer is recovered by libsecp256k1 (`tiny-secp256k1`, WebAssembly), about 0.3 ms a voucher.
 */
export function createVoucherVerifier({ chainId }: CreateVoucherVerifierParameters): VoucherVerifier {
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
  // The voucher's fields are all atomic, so its EIP-712 type is its own encoding alone.
  const voucherType = `Voucher(${voucherTypes.Voucher.map((field) => `${field.type} ${field.name}`).join(",")})`;
  const voucherTypeHash = hexToBytes(keccak256(toHex(voucherType)));

  // "\x19\x01" ‖ domainSeparator ‖ hashStruct(voucher), where hashStruct = keccak(typeHash ‖ channelId ‖ amount).
  const typed = new Uint8Array(2 + 32 + 32);
  typed.set([0x19, 0x01], 0);
  typed.set(hexToBytes(domainSeparator), 2);
  const struct = new Uint8Array(3 * 32);
  struct.set(voucherTypeHash, 0);

  const digestOf = (channelId: Hex, maxClaimableAmount: bigint): Uint8Array => {
    struct.set(hexToBytes(channelId), 32);
    struct.set(numberToBytes(maxClaimableAmount, { size: 32 }), 64);
    typed.set(keccak256(struct, "bytes"), 34);
    return keccak256(typed, "bytes");
  };

  function isSigned(payerAuthorizer: string, channelId: Hex, maxClaimableAtomic: bigint, signature: string) {
    if (!SIGNATURE.test(signature) || !CHANNEL_ID.test(channelId)) return false;
    const r = BigInt(`0x${signature.slice(2, 66)}`);
    const s = BigInt(`0x${signature.slice(66, 130)}`);
    const v = Number.parseInt(signature.slice(130, 132), 16);
    if ((v !== 27 && v !== 28) || r === 0n || r >= N || s === 0n || s > HALF_N) return false;
    if (maxClaimableAtomic < 0n || maxClaimableAtomic >= 1n << 128n) return false;
    let key: Uint8Array | null;
    try {
      key = recover(
        digestOf(channelId, maxClaimableAtomic),
        hexToBytes(signature.slice(0, 130) as Hex),
        (v - 27) as 0 | 1,
        false,
      );
    } catch {
      return false;
    }
    if (!key) return false;
    return `0x${keccak256(key.subarray(1)).slice(-40)}` === payerAuthorizer.toLowerCase();
  }

  return { isSigned };
}
