import { httpStatusOf, RETRY_AFTER_SECONDS_OF, type TollgateErrorCode } from "../errors/index.js";

/** An HTTP answer for an error: status from the one table, OpenAI's error shape, Retry-After where it applies. */
export type ErrorAnswer = { status: number; headers: Record<string, string>; body: Record<string, unknown> };

const TYPE_OF_STATUS: Record<number, string> = {
  400: "invalid_request_error",
  // OpenAI answers a missing or wrong key with 401 and this type too: the caller's error, not the server's.
  401: "invalid_request_error",
  404: "invalid_request_error",
  409: "invalid_request_error",
  413: "invalid_request_error",
  502: "backend_error",
  504: "backend_error",
};

/** Builds the answer for `code`; `extra` adds fields such as `param` or `reason` to the error object. */
export function errorAnswer(
  code: TollgateErrorCode,
  message: string,
  extra: Record<string, unknown> = {},
): ErrorAnswer {
  const status = httpStatusOf(code);
  const retryAfter = RETRY_AFTER_SECONDS_OF[code];
  return {
    status,
    headers: retryAfter === undefined ? {} : { "Retry-After": String(retryAfter) },
    body: { error: { message, type: TYPE_OF_STATUS[status] ?? "server_error", code, ...extra } },
  };
}
