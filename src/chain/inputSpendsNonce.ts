import { eip3009ABI, x402ExactPermit2ProxyABI, x402UptoPermit2ProxyABI } from "@x402/evm";
import { type Abi, decodeFunctionData, type Hex, numberToHex } from "viem";

/** The nonce a settlement transaction's input spends, if it calls a known x402 proxy or EIP-3009 function. */
function nonceInInput(input: Hex): bigint | Hex | undefined {
  for (const abi of [x402UptoPermit2ProxyABI, x402ExactPermit2ProxyABI] as Abi[]) {
    try {
      const { args } = decodeFunctionData({ abi, data: input });
      const permit = args?.[0] as { nonce?: unknown } | undefined;
      if (typeof permit?.nonce === "bigint") return permit.nonce;
    } catch {
      // Not this ABI.
    }
  }
  try {
    const { args } = decodeFunctionData({ abi: eip3009ABI as Abi, data: input });
    const nonce = args?.[5];
    if (typeof nonce === "string") return nonce as Hex;
  } catch {
    // Not an EIP-3009 call.
  }
  return undefined;
}

/**
 * Whether a transaction's input spends an authorization's nonce (a Permit2 nonce, or an EIP-3009
 * bytes32 nonce): a call to an x402 proxy or to an EIP-3009 function is decoded; a call that cannot
 * be decoded (a multicall, a smart wallet) must hold the nonce as a whole 32-byte word, unless
 * `decodedOnly` (a word anywhere proves nothing to someone who does not trust the sender).
 */
export function inputSpendsNonce(
  input: Hex,
  wanted: bigint | Hex,
  { decodedOnly = false }: { decodedOnly?: boolean } = {},
): boolean {
  const found = nonceInInput(input);
  if (found === undefined && decodedOnly) return false;
  if (found !== undefined) {
    return typeof found === "bigint" && typeof wanted === "bigint"
      ? found === wanted
      : String(found).toLowerCase() === numberToHex(BigInt(wanted), { size: 32 }).toLowerCase();
  }
  const word = numberToHex(BigInt(wanted), { size: 32 }).slice(2).toLowerCase();
  const body = input.slice(10).toLowerCase();
  for (let at = 0; at + 64 <= body.length; at += 64) if (body.slice(at, at + 64) === word) return true;
  return false;
}
