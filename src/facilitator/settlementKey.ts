import type { PaymentPayload } from "@x402/core/types";
import { normalizeNonce } from "../ledger/index.js";
import { BATCH_SETTLEMENT_SCHEME } from "./batchSettlementPayload.js";

/** The identity of one authorization: it may settle at most once. */
export type SettlementKey = { network: string; payer: string; nonce: string };

/**
 * The (network, payer, nonce) of a payment payload: the Permit2 nonce for `upto` and
 * exact-Permit2, the EIP-3009 nonce for exact-EIP-3009; undefined for an unknown shape and for
 * batch-settlement, whose payloads are not one-shot authorizations.
 */
export function settlementKeyOf(payload: PaymentPayload): SettlementKey | undefined {
  if (payload.accepted.scheme === BATCH_SETTLEMENT_SCHEME) return undefined;
  const inner = payload.payload as Record<string, unknown>;
  const auth = (inner.permit2Authorization ?? inner.authorization) as
    | { from?: unknown; nonce?: unknown }
    | undefined;
  if (
    !auth ||
    typeof auth.from !== "string" ||
    (typeof auth.nonce !== "string" && typeof auth.nonce !== "number")
  )
    return undefined;
  // One nonce however it is written ("5", "05", "0x5"): one key, as on chain.
  let nonce: string;
  try {
    nonce = normalizeNonce(String(auth.nonce));
  } catch {
    return undefined;
  }
  return { network: payload.accepted.network, payer: auth.from.toLowerCase(), nonce };
}

/** One string for a settlement key, for maps and logs. */
export function settlementKeyString(key: SettlementKey): string {
  return `${key.network}/${key.payer}/${key.nonce}`;
}
