import { TollgateError } from "../errors/index.js";
import type { PromptKind } from "./promptTokenBound.js";

/**
 * How many completions one request generates, each up to the output limit: `n` for chat;
 * `max(n, best_of)` per prompt for completions, times the number of prompts; 0 for
 * embeddings. The output to authorize is `resolveOutputLimit(…) × completionCount(…)`.
 * @example
 * const maxOutputTokens = outputLimit * completionCount("chat", body);
 */
export function completionCount(kind: PromptKind, body: Record<string, unknown>): number {
  if (kind === "embedding") return 0;
  const n = positiveInteger(body.n, "n");
  if (kind === "chat") return n;
  const bestOf = positiveInteger(body.best_of, "best_of");
  return Math.max(n, bestOf) * promptCount(body.prompt);
}

function positiveInteger(value: unknown, field: string): number {
  if (value === undefined || value === null) return 1;
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return value;
  throw new TollgateError({
    code: "TOLLGATE_REQUEST_INVALID",
    shortMessage: `${field} must be a positive integer`,
    details: { field },
  });
}

/** A string or one token-id array is one prompt; an array of strings or of id arrays is many. */
function promptCount(prompt: unknown): number {
  if (!Array.isArray(prompt) || prompt.length === 0) return 1;
  return prompt.every((item) => typeof item === "number") ? 1 : prompt.length;
}
