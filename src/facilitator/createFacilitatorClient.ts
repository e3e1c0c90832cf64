import { HTTPFacilitatorClient } from "@x402/core/http";
import { currentRequestId, REQUEST_ID_HEADER } from "../errors/index.js";

export type CreateFacilitatorClientParameters = {
  /** The facilitator's base URL (`tollgate facilitator` prints it). */
  url: string;
  /** The bearer token it wants for `/verify` and `/settle` (`tollgate facilitator` prints it); none for a public one. */
  token?: string | undefined;
  timeoutMs?: number | undefined;
};

/**
 * The official HTTP facilitator client, sending the facilitator's token (when given) and the current
 * request's id, so that the facilitator's log lines name the request too.
 */
export function createFacilitatorClient({
  url,
  token,
  timeoutMs,
}: CreateFacilitatorClientParameters): HTTPFacilitatorClient {
  return new HTTPFacilitatorClient({
    url,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    createAuthHeaders: async () => {
      const requestId = currentRequestId();
      const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      const headers: Record<string, string> = {
        ...auth,
        ...(requestId ? { [REQUEST_ID_HEADER]: requestId } : {}),
      };
      return { verify: headers, settle: headers, supported: auth };
    },
  });
}
