import type { ChargeUsage } from "./settleCharge.js";

type Usage = { prompt_tokens?: unknown; completion_tokens?: unknown };

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= 0;

/** The backend's reported usage, when it is well-formed. */
export function reportedUsage(usage: unknown): ChargeUsage | undefined {
  if (typeof usage !== "object" || usage === null) return undefined;
  const { prompt_tokens, completion_tokens } = usage as Usage;
  if (!isCount(prompt_tokens)) return undefined;
  return {
    promptTokens: prompt_tokens,
    completionTokens: isCount(completion_tokens) ? completion_tokens : 0,
    source: "backend",
  };
}

/** The generated text of a non-streaming chat or completion response, for counting when usage is absent. */
export function generatedText(body: unknown): string {
  if (typeof body !== "object" || body === null) return "";
  const choices = (body as { choices?: unknown }).choices;
  if (!Array.isArray(choices)) return "";
  const pieces: string[] = [];
  for (const choice of choices) {
    if (typeof choice !== "object" || choice === null) continue;
    const { text, message } = choice as { text?: unknown; message?: unknown };
    if (typeof text === "string") pieces.push(text);
    if (typeof message === "object" && message !== null) {
      const { content, refusal, tool_calls } = message as {
        content?: unknown;
        refusal?: unknown;
        tool_calls?: unknown;
      };
      if (typeof content === "string") pieces.push(content);
      if (typeof refusal === "string") pieces.push(refusal);
      if (Array.isArray(tool_calls)) {
        for (const call of tool_calls) {
          const fn = (call as { function?: { name?: unknown; arguments?: unknown } })?.function;
          if (typeof fn?.name === "string") pieces.push(fn.name);
          if (typeof fn?.arguments === "string") pieces.push(fn.arguments);
        }
      }
    }
  }
  return pieces.join("");
}

/**
 * Usage of a non-streaming response: the backend's own numbers, or, when it reports none,
 * the prompt bound and the tokenizer's count of the generated text.
 */
export function usageOfJsonResponse(
  body: unknown,
  promptTokenBound: number,
  countTokens: (text: string) => number,
): ChargeUsage {
  const reported = reportedUsage((body as { usage?: unknown } | null)?.usage);
  if (reported) return reported;
  const text = generatedText(body);
  return {
    promptTokens: promptTokenBound,
    completionTokens: text ? countTokens(text) : 0,
    source: "tokenizer",
  };
}
