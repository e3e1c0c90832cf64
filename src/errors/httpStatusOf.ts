import type { TollgateErrorCode } from "./TollgateError.js";

/**
 * The one table from error code to HTTP status; `undefined` for codes that never reach an HTTP
 * answer (CLI and start-up errors). docs/errors.md lists the same codes and statuses, and a test
 * holds them equal.
 */
export const HTTP_STATUS_OF: Readonly<Record<TollgateErrorCode, number | undefined>> = {
  TOLLGATE_CONFIG_INVALID: undefined,
  TOLLGATE_REQUEST_INVALID: 400,
  TOLLGATE_REQUEST_TOO_LARGE: 413,
  TOLLGATE_ROUTE_UNKNOWN: 404,
  TOLLGATE_OPERATOR_UNAUTHORIZED: 401,
  TOLLGATE_PAYMENT_MALFORMED: 400,
  TOLLGATE_PAYMENT_REQUIRED: 402,
  TOLLGATE_PAYMENT_INVALID: 402,
  TOLLGATE_PAYMENT_REPLAYED: 409,
  TOLLGATE_FACILITATOR_UNAVAILABLE: 503,
  TOLLGATE_CHAIN_UNAVAILABLE: 503,
  TOLLGATE_BACKEND_FAILED: 502,
  TOLLGATE_BACKEND_TIMEOUT: 504,
  TOLLGATE_MODEL_UNKNOWN: 404,
  TOLLGATE_POLICY_REFUSED: undefined,
  TOLLGATE_DEVNET_FAILED: undefined,
  TOLLGATE_COMPILE_FAILED: undefined,
  TOLLGATE_LEDGER_FAILED: 503,
  TOLLGATE_INTERNAL: 500,
};

/** Codes whose HTTP answer carries `Retry-After` (seconds): come back, nothing ran. */
export const RETRY_AFTER_SECONDS_OF: Readonly<Partial<Record<TollgateErrorCode, number>>> = {
  TOLLGATE_FACILITATOR_UNAVAILABLE: 2,
  TOLLGATE_CHAIN_UNAVAILABLE: 2,
  TOLLGATE_LEDGER_FAILED: 2,
};

/** The HTTP status of an error code (500 for codes that should never reach HTTP). */
export function httpStatusOf(code: TollgateErrorCode): number {
  return HTTP_STATUS_OF[code] ?? 500;
}
