import type { ChargeUsage } from "./settleCharge.js";

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

export type ReconcileUsageParameters = {
  /** The backend's `usage` object, unparsed (may be absent or garbage). */
  reported: unknown;
  /** Output tokens the gateway counted in what it forwarded. */
  deliveredOutputTokens: number;
  /** Choices the request asked for (slack for per-choice rounding). */
  choices: number;
  /** The authorized output: output limit × choices. */
  maxOutputTokens: number;
  /** The quote's prompt bound: no prompt charge goes above it. */
  promptTokenBound: number;
  /** Counts the prompt with the model's tokenizer, when the backend does not say. */
  countPrompt: () => Promise<number>;
};

/**
 * The usage to charge for. Output is what the gateway delivered, counted: the backend's
 * `completion_tokens` can only lower that, and only when it is consistent with it (at least half
 * of it, less a few tokens per choice; a backend reporting 0 for a long answer is not believed),
 * and the total never exceeds the authorized output. The prompt is the backend's `prompt_tokens`
 * when it reports a count within the quote's bound; otherwise the gateway counts it.
 */
export async function reconcileUsage({
  reported,
  deliveredOutputTokens,
  choices,
  maxOutputTokens,
  promptTokenBound,
  countPrompt,
}: ReconcileUsageParameters): Promise<ChargeUsage> {
  const usage =
    typeof reported === "object" && reported !== null ? (reported as Record<string, unknown>) : {};
  const slack = 4 * Math.max(choices, 1);
  const reportedOutput = usage.completion_tokens;
  const outputBelieved =
    isCount(reportedOutput) &&
    reportedOutput <= deliveredOutputTokens &&
    reportedOutput >= deliveredOutputTokens / 2 - slack;
  const completionTokens = Math.min(outputBelieved ? reportedOutput : deliveredOutputTokens, maxOutputTokens);

  const reportedPrompt = usage.prompt_tokens;
  const promptBelieved = isCount(reportedPrompt) && reportedPrompt <= promptTokenBound;
  const promptTokens = promptBelieved ? reportedPrompt : Math.min(await countPrompt(), promptTokenBound);
  return {
    promptTokens,
    completionTokens,
    source: promptBelieved && (outputBelieved || maxOutputTokens === 0) ? "backend" : "tokenizer",
  };
}
