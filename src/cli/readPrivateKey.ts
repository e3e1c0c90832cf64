import { type Hex, isHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { TollgateError } from "../errors/index.js";

/**
 * Checks a private key given on the command line or in the environment; `source` says where it came from
 * (e.g. `--private-key or TOLLGATE_PRIVATE_KEY`). The message says what is wrong, never the key itself.
 */
export function readPrivateKey(value: string | undefined, source: string): Hex {
  if (!value) {
    throw usageError(`a private key is needed: ${source} (0x and 64 hex digits)`);
  }
  const key = value.trim();
  const problem = keyProblem(key);
  if (problem) throw usageError(`the private key is not valid: ${problem} (from ${source})`);
  return key as Hex;
}

function keyProblem(key: string): string | undefined {
  if (!key.startsWith("0x")) return "it must start with 0x, then 64 hex digits";
  const digits = key.slice(2);
  if (!isHex(key) || digits.length === 0) return "it holds characters that are not hex digits (0-9, a-f)";
  if (digits.length !== 64)
    return `it has ${digits.length} hex digits after 0x; a private key has exactly 64 (32 bytes)`;
  try {
    privateKeyToAccount(key as Hex);
  } catch {
    return "it is not a valid secp256k1 key (zero, or not below the curve order)";
  }
  return undefined;
}

function usageError(message: string): TollgateError {
  return new TollgateError({ code: "TOLLGATE_CONFIG_INVALID", shortMessage: message });
}
