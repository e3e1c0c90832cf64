import { signRecoverable } from "tiny-secp256k1";
import {
  bytesToHex,
  type Hex,
  hashMessage,
  hashTypedData,
  hexToBytes,
  keccak256,
  type Signature,
  serializeSignature,
  serializeTransaction,
} from "viem";
import { type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts";

/**
 * A viem private-key account whose signatures are made by libsecp256k1 (`tiny-secp256k1`,
 * WebAssembly): about 0.12 ms a signature where viem's own account takes 0.4–0.5 ms. The signatures
 * are the same bytes (both follow RFC 6979 and give the lower `s`), so it replaces
 * `privateKeyToAccount` anywhere: receipts, vouchers, permits, transactions.
 * @example
 * const account = privateKeyAccount(privateKey);
 * await account.signTypedData({ domain, types, primaryType, message });
 */
export function privateKeyAccount(privateKey: Hex): PrivateKeyAccount {
  const base = privateKeyToAccount(privateKey);
  const key = hexToBytes(privateKey);

  /** The signature of a 32-byte hash, as viem gives it. */
  const signHash = (hash: Hex): Signature => {
    const { signature, recoveryId } = signRecoverable(hexToBytes(hash), key);
    const yParity = recoveryId & 1;
    return {
      r: bytesToHex(signature.subarray(0, 32)),
      s: bytesToHex(signature.subarray(32, 64)),
      v: yParity ? 28n : 27n,
      yParity,
    };
  };
  const signHex = (hash: Hex): Hex => serializeSignature(signHash(hash));

  return {
    ...base,
    async sign({ hash }) {
      return signHex(hash);
    },
    async signMessage({ message }) {
      return signHex(hashMessage(message));
    },
    async signTypedData(typedData) {
      return signHex(hashTypedData(typedData as Parameters<typeof hashTypedData>[0]));
    },
    async signTransaction(transaction, { serializer = serializeTransaction } = {}) {
      // An EIP-4844 transaction is signed without its sidecars (the network wrapper).
      const signable = transaction.type === "eip4844" ? { ...transaction, sidecars: false } : transaction;
      const signature = signHash(keccak256(await serializer(signable as typeof transaction)));
      return (await serializer(transaction, signature)) as never;
    },
  };
}
