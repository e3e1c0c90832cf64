/** Stable error codes; each is described in docs/errors.md. */
export type TollgateErrorCode =
  | "TOLLGATE_CONFIG_INVALID"
  | "TOLLGATE_REQUEST_INVALID"
  | "TOLLGATE_REQUEST_TOO_LARGE"
  | "TOLLGATE_ROUTE_UNKNOWN"
  | "TOLLGATE_OPERATOR_UNAUTHORIZED"
  | "TOLLGATE_PAYMENT_MALFORMED"
  | "TOLLGATE_PAYMENT_REQUIRED"
  | "TOLLGATE_PAYMENT_INVALID"
  | "TOLLGATE_PAYMENT_REPLAYED"
  | "TOLLGATE_FACILITATOR_UNAVAILABLE"
  | "TOLLGATE_CHAIN_UNAVAILABLE"
  | "TOLLGATE_BACKEND_FAILED"
  | "TOLLGATE_BACKEND_TIMEOUT"
  | "TOLLGATE_MODEL_UNKNOWN"
  | "TOLLGATE_POLICY_REFUSED"
  | "TOLLGATE_DEVNET_FAILED"
  | "TOLLGATE_COMPILE_FAILED"
  | "TOLLGATE_LEDGER_FAILED"
  | "TOLLGATE_INTERNAL";

export type TollgateErrorParameters = {
  code: TollgateErrorCode;
  /** One line for people. */
  shortMessage: string;
  details?: Record<string, unknown>;
  cause?: unknown;
};

/** The one error base of Tollgate: a stable code, a short message, details and a cause. */
export class TollgateError extends Error {
  override name = "TollgateError";
  readonly code: TollgateErrorCode;
  readonly shortMessage: string;
  readonly details: Record<string, unknown>;

  constructor({ code, shortMessage, details, cause }: TollgateErrorParameters) {
    super(`${code}: ${shortMessage}`, cause === undefined ? undefined : { cause });
    this.code = code;
    this.shortMessage = shortMessage;
    this.details = details ?? {};
  }
}

/** True when `error` is a TollgateError carrying `code`. */
export function isTollgateError(error: unknown, code?: TollgateErrorCode): error is TollgateError {
  return error instanceof TollgateError && (code === undefined || error.code === code);
}
