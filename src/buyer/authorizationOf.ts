import type { PaymentPayload } from "../protocol/index.js";

/** The parts of a signed authorization the spend store keeps: its nonce and when it stops being valid. */
export type AuthorizationTerms = {
  /** Permit2 nonce (decimal) or EIP-3009 nonce (0x bytes32). */
  nonce: string | undefined;
  /** After this, the authorization can no longer be settled. */
  deadline: Date | undefined;
  /** How the nonce is spent on chain. */
  kind: "permit2" | "eip3009" | undefined;
};

/** Reads nonce and deadline from an upto / exact payload (Permit2 or EIP-3009); unknown shapes give undefined. */
export function authorizationOf(payment: PaymentPayload): AuthorizationTerms {
  const payload = payment.payload as {
    permit2Authorization?: { nonce?: unknown; deadline?: unknown };
    authorization?: { nonce?: unknown; validBefore?: unknown };
  };
  if (payload.permit2Authorization) {
    const { nonce, deadline } = payload.permit2Authorization;
    return { nonce: text(nonce), deadline: secondsToDate(deadline), kind: "permit2" };
  }
  if (payload.authorization) {
    const { nonce, validBefore } = payload.authorization;
    return { nonce: text(nonce), deadline: secondsToDate(validBefore), kind: "eip3009" };
  }
  return { nonce: undefined, deadline: undefined, kind: undefined };
}

function text(value: unknown): string | undefined {
  return typeof value === "string" || typeof value === "number" ? String(value) : undefined;
}

function secondsToDate(value: unknown): Date | undefined {
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds > 0 ? new Date(seconds * 1000) : undefined;
}
