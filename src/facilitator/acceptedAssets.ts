import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { findNetworkPreset } from "../chain/index.js";

/** The reason a facilitator gives for a payment in a token it does not move. */
export const REASON_ASSET_NOT_ACCEPTED = "asset_not_accepted";

/**
 * Which tokens a facilitator moves: `assets` when given, else its network preset's USDC; on a
 * network without one (the devnet), any. A token of the payer's choosing would make the facilitator
 * pay gas for whatever its `transferFrom` does (a loop, a revert). Answers why a payment is refused,
 * or undefined: the requirements' asset and every `token` a channel payload names (a deposit's, a
 * claim's channels', a settle's, a refund's) must be accepted.
 */
export function createAssetCheck(network: string, assets?: readonly string[]) {
  const listed =
    assets ?? (findNetworkPreset(network)?.usdc ? [findNetworkPreset(network)?.usdc as string] : []);
  const accepted = new Set(listed.map((asset) => asset.toLowerCase()));
  return (payload: PaymentPayload, requirements: PaymentRequirements): string | undefined => {
    if (accepted.size === 0) return undefined;
    for (const token of [requirements.asset, ...tokensNamedIn(payload.payload)]) {
      if (typeof token !== "string" || !accepted.has(token.toLowerCase()))
        return `this facilitator moves only ${[...accepted].join(", ")} on ${network}, not ${String(token)}`;
    }
    return undefined;
  };
}

/** Every value of a `token` key in a payload (depth-bounded: a payload is at most a few levels deep). */
function tokensNamedIn(value: unknown, depth = 0): unknown[] {
  if (depth > 8 || typeof value !== "object" || value === null) return [];
  const found: unknown[] = [];
  for (const [key, inner] of Object.entries(value)) {
    if (key === "token") found.push(inner);
    else found.push(...tokensNamedIn(inner, depth + 1));
  }
  return found;
}
