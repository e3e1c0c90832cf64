import type { z } from "zod";
import { TollgateError } from "../../errors/index.js";
import { backendErrorBodySchema } from "./backendSchemas.js";

const excerptLength = 500;

/** Where a stream failure happened: before the first chunk reached us, or after some did. */
export type StreamFailurePhase = "before-output" | "mid-stream";

/** The backend answered with an HTTP error status. */
export function backendStatusError(parameters: {
  url: string;
  status: number;
  body: string;
  details?: Record<string, unknown>;
}): TollgateError {
  const { url, status, body } = parameters;
  const message = backendErrorMessage(body);
  return new TollgateError({
    code: "TOLLGATE_BACKEND_FAILED",
    shortMessage: `Backend answered HTTP ${status}${message === undefined ? "" : `: ${message}`}`,
    details: { url, status, bodyExcerpt: excerpt(body), ...parameters.details },
  });
}

/** The backend could not be reached, or the connection broke. */
export function backendNetworkError(parameters: {
  url: string;
  cause: unknown;
  details?: Record<string, unknown>;
}): TollgateError {
  const reason =
    parameters.cause instanceof Error ? causeMessage(parameters.cause) : String(parameters.cause);
  return new TollgateError({
    code: "TOLLGATE_BACKEND_FAILED",
    shortMessage: `Backend connection failed: ${reason}`,
    details: { url: parameters.url, ...parameters.details },
    cause: parameters.cause,
  });
}

/** The backend went silent for longer than the timeout. */
export function backendTimeoutError(parameters: {
  url: string;
  timeoutMs: number;
  details?: Record<string, unknown>;
}): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_BACKEND_TIMEOUT",
    shortMessage: `Backend did not answer within ${parameters.timeoutMs} ms`,
    details: { url: parameters.url, timeoutMs: parameters.timeoutMs, ...parameters.details },
  });
}

/** The backend's answer is not what an OpenAI-compatible server sends. */
export function backendInvalidResponseError(parameters: {
  url: string;
  reason: string;
  body?: string;
  cause?: unknown;
  details?: Record<string, unknown>;
}): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_BACKEND_FAILED",
    shortMessage: `Backend response invalid: ${parameters.reason}`,
    details: {
      url: parameters.url,
      ...(parameters.body === undefined ? {} : { bodyExcerpt: excerpt(parameters.body) }),
      ...parameters.details,
    },
    cause: parameters.cause,
  });
}

/** Validates a parsed backend answer; a failure names each offending field. */
export function parseBackendValue<Schema extends z.ZodType>(
  schema: Schema,
  value: unknown,
  context: { url: string; body: string; details?: Record<string, unknown> },
): z.infer<Schema> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const reason = result.error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length === 0 ? "(root)" : issue.path.join(".")}: ${issue.message}`)
    .join("; ");
  throw backendInvalidResponseError({ ...context, reason, cause: result.error });
}

/** The message inside an OpenAI-style `{ error: … }` body, when there is one. */
export function backendErrorMessage(body: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const result = backendErrorBodySchema.safeParse(parsed);
  if (!result.success) return undefined;
  const { error } = result.data;
  const message = typeof error === "string" ? error : error.message;
  return message === undefined ? undefined : excerpt(message, 200);
}

function excerpt(text: string, length = excerptLength): string {
  return text.length <= length ? text : `${text.slice(0, length)}…`;
}

function causeMessage(error: Error): string {
  // undici reports "fetch failed" / "terminated" and keeps the useful part in `cause`.
  const cause = error.cause;
  if (cause instanceof Error && cause.message !== "") return `${error.message} (${cause.message})`;
  return error.message;
}
