import type { OutputMeter } from "./OutputMeter.js";

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The longest prefix of `text` that counts at most `maxTokens`; shrinks from a generous cut. */
function cutText(text: string, maxTokens: number, meter: OutputMeter): string {
  if (maxTokens <= 0) return "";
  let end = Math.min(text.length, maxTokens * 16);
  let cut = text.slice(0, end);
  while (end > 0 && meter.tokensOf(cut) > maxTokens) {
    end = Math.floor(end * 0.85);
    cut = text.slice(0, end);
  }
  return cut;
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
