import type { ChargeUsage } from "./settleCharge.js";

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/**
 * Where a route's normalized usage puts the prompt tokens written to a prompt cache (Anthropic's
 * `cache_creation_input_tokens`). A symbol, not a field name: no backend's JSON can set it, so only
 * an API that reports cache writes in its own words (the Messages route reads them) is charged for them.
 */
export const CACHE_WRITE_TOKENS: unique symbol = Symbol("prompt tokens written to a prompt cache");

export type ReconcileUsageParameters = {
  /** The backend's `usage` object, unparsed (may be absent or garbage). */
  reported: unknown;
  /** Output tokens the gateway counted in what it forwarded. */
  deliveredOutputTokens: number;
  /**
   * Of those, the model's own reasoning shown in full as it thought (`OutputMeter.reasoningTokens`, not
   * a summary of it): reasoning the backend itemizes is unseen only beyond it.
   */
  deliveredReasoningTokens?: number;
  /**
   * When that count is an estimate (a model whose tokenizer the gateway does not know): the UTF-8 bytes
   * forwarded, each choice's held to its limit (`OutputMeter.byteCeiling`), which the model's own count
   * cannot exceed, and up to which its report is believed. Undefined when the answer was cut.
   */
  deliveredOutputBytes?: number | undefined;
  /** Choices the request asked for (slack for per-choice rounding). */
  choices: number;
  /** The authorized output: output limit × choices. */
  maxOutputTokens: number;
  /** The quote's prompt bound: no prompt charge goes above it. */
  promptTokenBound: number;
  /** Counts the prompt with the model's tokenizer, when the backend does not say or is not believed. */
  countPrompt: () => Promise<number>;
  /** Whether a reported prompt count below half the bound can be honest (`promptCountPlausible`). */
  promptCountPlausible: (reported: number) => Promise<boolean>;
  /** The request asked for its prompt to be cached: reported cache writes are believed (else they are input). */
  promptCache?: boolean;
  /** Output the request lets the model generate unseen (Anthropic's thinking budget): believed beyond what was delivered. */
  hiddenOutputTokens?: number;
  /**
   * Output tokens the backend sent after the buyer left, read for its usage report and not forwarded:
   * the backend's output count is taken less these (at least 0), so none of them is charged as hidden output.
   */
  undeliveredOutputTokens?: number;
};

/**
 * The usage to charge for. Output is what the gateway delivered, counted: the backend's
 * `completion_tokens` is believed up to that count (the bytes delivered, when the count is an
 * estimate) plus the reasoning tokens it itemizes
 * (`completion_tokens_details.reasoning_tokens`, reasoning it did not stream) or the hidden output the
 * request allowed (`hiddenOutputTokens`, thinking Anthropic bills as output), a report above that held
 * to it, and only when at
 * least half the count, less a few tokens per choice (a report of 0 for a long answer is not
 * believed); the total never exceeds the authorized output. The prompt is the backend's `prompt_tokens`
 * when it reports a count within the quote's bound and at least about half the prompt's text
 * (`promptCountPlausible`, the same floor as output's); otherwise the gateway counts it. The cached part
 * of a believed prompt (`prompt_tokens_details.cached_tokens`), the part written to a prompt cache
 * (`CACHE_WRITE_TOKENS`, Anthropic's cache writes) and the itemized reasoning
 * are reported as units of their own (`cached_input_tokens`, `cache_write_input_tokens`,
 * `reasoning_tokens`).
 */
export async function reconcileUsage({
  reported,
  deliveredOutputTokens,
  deliveredReasoningTokens = 0,
  deliveredOutputBytes,
  choices,
  maxOutputTokens,
  promptTokenBound,
  countPrompt,
  promptCountPlausible,
  promptCache = false,
  hiddenOutputTokens = 0,
  undeliveredOutputTokens = 0,
}: ReconcileUsageParameters): Promise<ChargeUsage> {
  const usage =
    typeof reported === "object" && reported !== null ? (reported as Record<string, unknown>) : {};
  const slack = 4 * Math.max(choices, 1);
  const reportedOutput = isCount(usage.completion_tokens)
    ? Math.max(0, usage.completion_tokens - undeliveredOutputTokens)
    : usage.completion_tokens;
  // Reasoning a model does not stream (OpenAI's o-series) is output nobody saw: believed only as far
  // as the backend itemizes it, and still within the authorized output.
  const details = usage.completion_tokens_details as Record<string, unknown> | null | undefined;
  const hiddenReasoning = isCount(details?.reasoning_tokens) ? details.reasoning_tokens : 0;
  // Hidden output is believed up to its allowance: a report above it (the delivered count is an estimate
  // for most models) is held to it rather than thrown away, which would charge none of the hidden part.
  const hidden = Math.max(hiddenReasoning, hiddenOutputTokens);
  // Itemized reasoning the buyer was shown as it streamed is in what was delivered already: only the
  // rest of it was unseen, so a count of both is not charged twice.
  const unseen = Math.max(hiddenReasoning - deliveredReasoningTokens, hiddenOutputTokens, 0);
  // An estimated count (another tokenizer) can fall short of the model's own: that is believed up to
  // the bytes delivered, which no byte-level tokenizer's count exceeds.
  const shown = Math.max(deliveredOutputTokens, deliveredOutputBytes ?? 0);
  const outputBelieved =
    isCount(reportedOutput) &&
    (hidden > 0 || reportedOutput <= shown) &&
    reportedOutput >= deliveredOutputTokens / 2 - slack;
  const believedOutput = outputBelieved ? Math.min(reportedOutput, shown + unseen) : deliveredOutputTokens;
  const completionTokens = Math.min(believedOutput, maxOutputTokens);

  const reportedPrompt = usage.prompt_tokens;
  // A report of half the bound or more is at least half of any count (the bound is above them all);
  // a lower one is weighed against the prompt's text, so a backend reporting 0 for a long prompt is not believed.
  const promptBelieved =
    isCount(reportedPrompt) &&
    reportedPrompt <= promptTokenBound &&
    (reportedPrompt * 2 >= promptTokenBound || (await promptCountPlausible(reportedPrompt)));
  const promptTokens = promptBelieved ? reportedPrompt : Math.min(await countPrompt(), promptTokenBound);
  // Cached prompt tokens and reasoning are parts of the prompt and the output, priced on their own.
  const promptDetails = usage.prompt_tokens_details as Record<string, unknown> | null | undefined;
  const cached = promptBelieved && isCount(promptDetails?.cached_tokens) ? promptDetails.cached_tokens : 0;
  const cachedTokens = Math.min(cached, promptTokens);
  const reportedWrites = (usage as { [CACHE_WRITE_TOKENS]?: unknown })[CACHE_WRITE_TOKENS];
  const written = promptBelieved && promptCache && isCount(reportedWrites) ? reportedWrites : 0;
  const cacheWriteTokens = Math.min(written, promptTokens - cachedTokens);
  // The answer the buyer was shown is output, whatever the itemization says: reasoning is the rest at most.
  const answerShown = Math.max(0, deliveredOutputTokens - deliveredReasoningTokens);
  const reasoningTokens = outputBelieved
    ? Math.max(0, Math.min(hiddenReasoning, completionTokens - answerShown))
    : 0;
  return {
    promptTokens,
    completionTokens,
    units: {
      input_tokens: promptTokens - cachedTokens - cacheWriteTokens,
      ...(cachedTokens > 0 ? { cached_input_tokens: cachedTokens } : {}),
      ...(cacheWriteTokens > 0 ? { cache_write_input_tokens: cacheWriteTokens } : {}),
      output_tokens: completionTokens - reasoningTokens,
      ...(reasoningTokens > 0 ? { reasoning_tokens: reasoningTokens } : {}),
      requests: 1,
    },
    source: promptBelieved && (outputBelieved || maxOutputTokens === 0) ? "backend" : "tokenizer",
    promptSource: promptBelieved ? "backend" : "gateway",
  };
}
