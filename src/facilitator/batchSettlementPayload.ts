import { createHash } from "node:crypto";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";

/** The x402 scheme of payment channels claimed and settled in batches (`@x402/evm`'s batch-settlement). */
export const BATCH_SETTLEMENT_SCHEME = "batch-settlement";

/** What a batch-settlement payload asks for: its `type`, as `@x402/evm` routes it. */
export type ChannelAction = "deposit" | "voucher" | "claim" | "settle" | "refund" | "unknown";

/** The parts of a batch-settlement payload a log line names. */
export type ChannelPayloadSummary = {
  action: ChannelAction;
  /** The channel's payer (deposit, voucher, refund); a claim may span channels of several payers. */
  payer?: string;
  /** The receiver a `settle` pays out to. */
  receiver?: string;
};

const channelActions = new Set<string>(["deposit", "voucher", "claim", "settle", "refund"]);

/**
 * True when the requirements name batch-settlement: `@x402/core` picks the scheme by the
 * requirements, so they decide the route (a payload that disagrees is refused by the scheme).
 */
export function isBatchSettlementPayment(requirements: PaymentRequirements): boolean {
  return requirements.scheme === BATCH_SETTLEMENT_SCHEME;
}

/** The action, payer and receiver of a batch-settlement payload; fields it lacks stay undefined. */
export function channelPayloadSummaryOf(payload: PaymentPayload): ChannelPayloadSummary {
  const inner = payload.payload as {
    type?: unknown;
    channelConfig?: { payer?: unknown };
    receiver?: unknown;
  };
  const action = typeof inner.type === "string" && channelActions.has(inner.type) ? inner.type : "unknown";
  const payer = inner.channelConfig?.payer;
  return {
    action: action as ChannelAction,
    ...(typeof payer === "string" ? { payer: payer.toLowerCase() } : {}),
    ...(typeof inner.receiver === "string" ? { receiver: inner.receiver.toLowerCase() } : {}),
  };
}

/**
 * One string per distinct batch-settlement request, so that concurrent copies of it share one
 * attempt. Not a replay guard: the contract refuses a reused deposit authorization or refund
 * nonce, and claims and settles are cumulative, so repeating one moves nothing more.
 */
export function channelRequestKeyOf(payload: PaymentPayload): string {
  const digest = createHash("sha256").update(JSON.stringify(payload.payload)).digest("hex");
  return `${payload.accepted.network}/${BATCH_SETTLEMENT_SCHEME}/${digest}`;
}

const ADDRESS_KEYS = new Set(["payer", "payerAuthorizer", "receiver", "receiverAuthorizer", "token"]);
const ATOMIC_KEYS = new Set(["amount", "maxClaimableAmount", "totalClaimed", "refundNonce"]);

/**
 * The first field of a batch-settlement payload that cannot be what its name says: an address (`payer`,
 * `receiver`, `token`, …) that is not 0x and 40 hex digits, an amount or nonce not in decimal digits, or
 * `claims` that is not a list. Checked at the edge, so a malformed payload is refused in words rather
 * than failing inside the scheme. Undefined when none is found (the scheme checks the rest).
 */
export function channelPayloadProblem(
  value: unknown,
  path = "paymentPayload.payload",
  depth = 0,
): { error: string; field: string } | undefined {
  if (depth > 8 || typeof value !== "object" || value === null) return undefined;
  for (const [key, inner] of Object.entries(value)) {
    const field = `${path}.${key}`;
    if (ADDRESS_KEYS.has(key) && !(typeof inner === "string" && /^0x[0-9a-fA-F]{40}$/.test(inner)))
      return { error: `${field}: an address is 0x and 40 hex digits, not ${JSON.stringify(inner)}`, field };
    if (
      ATOMIC_KEYS.has(key) &&
      !(typeof inner === "string"
        ? /^[0-9]{1,78}$/.test(inner)
        : Number.isSafeInteger(inner) && Number(inner) >= 0)
    )
      return { error: `${field}: a whole number in decimal digits, not ${JSON.stringify(inner)}`, field };
    if (key === "claims" && !Array.isArray(inner))
      return { error: `${field}: a list of claims, not ${JSON.stringify(inner)}`, field };
    const problem = channelPayloadProblem(inner, field, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}
