import { TollgateError } from "../errors/index.js";

export type ResolveOutputLimitOptions = {
  /** The request field the limit came from, for the error message. Default `max_tokens`. */
  field?: string;
};

/**
 * The output-token limit to authorize and to send to the backend: the request's own limit,
 * capped by the model's; the model's when the request sets none (`undefined` or `null`).
 * A limit that is not a positive integer is refused (`TOLLGATE_REQUEST_INVALID`).
 * @example
 * resolveOutputLimit(body.max_tokens, 4096) // 256 for 256, 4096 for 10000 or undefined
 */
export function resolveOutputLimit(
  requested: unknown,
  modelMaxOutputTokens: number,
  options: ResolveOutputLimitOptions = {},
): number {
  if (!(Number.isSafeInteger(modelMaxOutputTokens) && modelMaxOutputTokens > 0)) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `the model's maxOutputTokens must be a positive integer, got ${modelMaxOutputTokens}`,
      details: { maxOutputTokens: modelMaxOutputTokens },
    });
  }
  if (requested === undefined || requested === null) return modelMaxOutputTokens;
  const field = options.field ?? "max_tokens";
  if (typeof requested !== "number" || !Number.isInteger(requested) || requested <= 0) {
    throw new TollgateError({
      code: "TOLLGATE_REQUEST_INVALID",
      shortMessage: `${field} must be a positive integer, got ${describe(requested)}`,
      details: { field, value: requested },
    });
  }
  return Math.min(requested, modelMaxOutputTokens);
}

function describe(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  return JSON.stringify(value) ?? String(value);
}
