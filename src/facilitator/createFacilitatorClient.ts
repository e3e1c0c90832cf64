import { HTTPFacilitatorClient } from "@x402/core/http";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { z } from "zod";
import { currentRequestId, REQUEST_ID_HEADER } from "../errors/index.js";
import type { ReleaseResponse } from "./createFacilitator.js";

export type CreateFacilitatorClientParameters = {
  /** The facilitator's base URL (`tollgate facilitator` prints it). */
  url: string;
  /** The bearer token it wants for `/verify` and `/settle` (`tollgate facilitator` prints it); none for a public one. */
  token?: string | undefined;
  /** Bound on each call, `POST /relay-approval` included (ms); default the official client's. */
  timeoutMs?: number | undefined;
  /**
   * The facilitator serves Tollgate's `POST /relay-approval` (`facilitatorRelaysApprovals` asks): it is a
   * `tollgate facilitator`, and the client then has `relaySponsoredApproval` and `release`.
   */
  relaysApprovals?: boolean | undefined;
};

/** A remote facilitator: the official HTTP client, and Tollgate's approve relay when the facilitator has it. */
export type FacilitatorClient = HTTPFacilitatorClient & {
  /**
   * Has a verified payment's signed `approve` relayed before it is served: why it cannot be served, or
   * undefined. Throws when the facilitator does not answer.
   */
  relaySponsoredApproval?(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    options?: { signal?: AbortSignal | undefined },
  ): Promise<string | undefined>;
  /**
   * Gives back what a verified payment holds at the facilitator (`POST /release`) when the seller drops
   * it without settling. Throws when the facilitator does not answer, or has no such route.
   */
  release?(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    options?: { signal?: AbortSignal | undefined },
  ): Promise<ReleaseResponse>;
};

const releaseAnswerSchema = z.union([
  z.object({ released: z.literal(true) }),
  z.object({ released: z.literal(false), reason: z.enum(["settling", "verified_again", "not_held"]) }),
]);

const relayAnswerSchema = z.object({ isValid: z.boolean(), invalidMessage: z.string().optional() });

/**
 * The official HTTP facilitator client, sending the facilitator's token (when given) and the current
 * request's id, so that the facilitator's log lines name the request too.
 */
export function createFacilitatorClient({
  url,
  token,
  timeoutMs,
  relaysApprovals = false,
}: CreateFacilitatorClientParameters): FacilitatorClient {
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const requestHeaders = () => {
    const requestId = currentRequestId();
    return { ...auth, ...(requestId ? { [REQUEST_ID_HEADER]: requestId } : {}) };
  };
  const official = new HTTPFacilitatorClient({
    url,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    createAuthHeaders: async () => {
      const headers = requestHeaders();
      return { verify: headers, settle: headers, supported: auth };
    },
  });
  const client: FacilitatorClient = official;
  if (!relaysApprovals) return client;
  const base = url.replace(/\/+$/, "");
  /** Posts a payment as to `/verify`, bounded like verify and settle; the answer's status and text. */
  const post = async (
    path: string,
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    signal?: AbortSignal,
  ) => {
    const bound = AbortSignal.timeout(official.timeoutMs);
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...requestHeaders() },
      body: JSON.stringify({
        x402Version: payload.x402Version,
        paymentPayload: payload,
        paymentRequirements: requirements,
      }),
      signal: signal ? AbortSignal.any([bound, signal]) : bound,
    });
    return { status: response.status, ok: response.ok, text: await response.text() };
  };
  client.release = async (payload, requirements, options) => {
    const response = await post("/release", payload, requirements, options?.signal);
    if (!response.ok)
      throw new Error(
        response.status === 404
          ? "the facilitator has no POST /release (a tollgate facilitator older than it): the payment's permit nonce stays held until its deadline"
          : `the facilitator answered HTTP ${response.status} to /release: ${response.text.slice(0, 300)}`,
      );
    const answer = releaseAnswerSchema.safeParse(JSON.parse(response.text));
    if (!answer.success)
      throw new Error(`the facilitator's /release answer is not understood: ${response.text.slice(0, 300)}`);
    return answer.data;
  };
  client.relaySponsoredApproval = async (payload, requirements, options) => {
    // Bounded like verify and settle: a facilitator whose chain hangs holds the buyer's request no longer.
    const response = await post("/relay-approval", payload, requirements, options?.signal);
    const { text } = response;
    // The route is gone (another facilitator in its place since the gateway started): no relay before
    // serving, so no sponsorship, for good; not a moment to wait.
    if (response.status === 404 || response.status === 405)
      return `this gateway's facilitator does not relay a signed approve before serving (HTTP ${response.status} to POST /relay-approval); approve Permit2 first`;
    if (!response.ok)
      throw new Error(
        `the facilitator answered HTTP ${response.status} to /relay-approval: ${text.slice(0, 300)}`,
      );
    const answer = relayAnswerSchema.safeParse(JSON.parse(text));
    if (!answer.success)
      throw new Error(`the facilitator's /relay-approval answer is not understood: ${text.slice(0, 300)}`);
    return answer.data.isValid ? undefined : (answer.data.invalidMessage ?? "the facilitator refused it");
  };
  return client;
}

/**
 * Whether a remote facilitator relays a payment's signed `approve` before the seller serves it
 * (`tollgate facilitator` does, at `POST /relay-approval`): asked with a bodiless `GET`, which such a
 * facilitator answers 405. Any other answer, or none, is no.
 */
export async function facilitatorRelaysApprovals(url: string, token: string | undefined): Promise<boolean> {
  // A connection reset (a kept-alive socket the facilitator closed) is asked again: answered "no" for the
  // gateway's lifetime, it would stop relaying approves and taking permits' sponsored uses before serving.
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(`${url.replace(/\/+$/, "")}/relay-approval`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        signal: AbortSignal.timeout(10_000),
      });
      await response.body?.cancel();
      return response.status === 405;
    } catch (error) {
      if (attempt >= RELAY_PROBE_ATTEMPTS || (error as Error)?.name === "TimeoutError") return false;
    }
  }
}

/** How many times a gateway asks whether its facilitator relays approves, when the connection fails. */
const RELAY_PROBE_ATTEMPTS = 3;
