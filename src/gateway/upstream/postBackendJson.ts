import type { z } from "zod";
import { BackendCall, type BackendEndpoint } from "./BackendCall.js";
import { backendInvalidResponseError, backendStatusError, parseBackendValue } from "./upstreamErrors.js";

export type PostBackendJsonParameters<Schema extends z.ZodType> = {
  endpoint: BackendEndpoint;
  /** Path under the base URL, e.g. `/chat/completions`. */
  path: string;
  body: unknown;
  schema: Schema;
  signal?: AbortSignal | undefined;
};

/**
 * POSTs a JSON body to the backend and returns its validated JSON answer. The timeout covers the
 * whole call, body included; HTTP ≥ 400, network failures and malformed answers throw
 * TOLLGATE_BACKEND_FAILED, the timeout TOLLGATE_BACKEND_TIMEOUT, and an aborted `signal` its reason.
 */
export async function postBackendJson<Schema extends z.ZodType>(
  parameters: PostBackendJsonParameters<Schema>,
): Promise<z.infer<Schema>> {
  const { endpoint, path, body, schema, signal } = parameters;
  const call = new BackendCall(endpoint, path, signal);
  try {
    const response = await call.post(body, "application/json");
    if (response.status >= 400) {
      const text = await call.readExcerpt(response);
      throw backendStatusError({ url: call.url, status: response.status, body: text });
    }
    const text = await call.wait(() => response.text());
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (cause) {
      throw backendInvalidResponseError({ url: call.url, reason: "not JSON", body: text, cause });
    }
    return parseBackendValue(schema, json, { url: call.url, body: text });
  } finally {
    call.dispose();
  }
}
