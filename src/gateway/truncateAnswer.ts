import type { OutputMeter } from "./OutputMeter.js";

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The longest prefix of `text` that counts at most `maxTokens` (binary search on its length). */
function cutText(text: string, maxTokens: number, meter: OutputMeter): string {
  if (maxTokens <= 0) return "";
  // Tokens rarely span more than 16 characters: searching no further keeps the cut cheap.
  let low = 0;
  let high = Math.min(text.length, maxTokens * 16);
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (meter.tokensOf(text.slice(0, middle)) <= maxTokens) low = middle;
    else high = middle - 1;
  }
  return text.slice(0, low);
}

/**
 * A copy of a whole chat or completions answer cut to the authorized output: choices past the
 * `choices` asked for are dropped, and each choice's text (`message.content` or `text`) is cut to
 * the per-choice allowance with `finish_reason: "length"`. Undefined when the answer is not in a
 * shape that can be cut.
 */
export function truncateAnswer(
  answer: Record<string, unknown>,
  choices: number,
  meter: OutputMeter,
): Record<string, unknown> | undefined {
  if (!Array.isArray(answer.choices)) return undefined;
  const allowance = meter.allowancePerChoice;
  const kept: unknown[] = [];
  for (const [position, choice] of answer.choices.entries()) {
    if (!isObject(choice)) continue;
    const index = typeof choice.index === "number" ? choice.index : position;
    if (index >= Math.max(choices, 1)) continue;
    const copy: Record<string, unknown> = { ...choice };
    if (typeof copy.text === "string" && meter.tokensOf(copy.text) > allowance) {
      copy.text = cutText(copy.text, allowance, meter);
      copy.finish_reason = "length";
    }
    if (isObject(copy.message) && typeof copy.message.content === "string") {
      const content = copy.message.content;
      if (meter.tokensOf(content) > allowance) {
        copy.message = { ...copy.message, content: cutText(content, allowance, meter) };
        copy.finish_reason = "length";
      }
    }
    kept.push(copy);
  }
  return { ...answer, choices: kept };
}
