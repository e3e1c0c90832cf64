import { countTexts } from "./countPromptTokens.js";
import { promptParts } from "./promptParts.js";
import type { PromptTokenBoundParameters } from "./promptTokenBound.js";
import { utf8ByteLength } from "./tokenizer.js";

/**
 * Bytes of text one token spans at most, for a report believed without counting: English takes
 * about 4 bytes a token, code and most other scripts fewer; only long runs of one character take
 * more, and those are counted.
 */
export const PLAIN_BYTES_PER_TOKEN = 8;
/** Tokens an honest report may fall short of half the count by (rounding, a tokenizer of the model's own). */
const SLACK_TOKENS = 8;

/**
 * Whether a backend's count of the prompt can be honest: at least half of what the gateway counts
 * in the prompt's texts and token ids (by the model's tokenizer, `o200k_base` for models without
 * one), less a few tokens. Only what any tokenizer must count is weighed: images, audio, files, the
 * chat template and top-level fields such as `tools` (which a backend renders its own way) can only
 * raise an honest count. `plainTexts`, when given, are the texts weighed instead of every text of the
 * body: for an API whose prompt body wraps blocks in JSON (keys, ids, signatures a backend may not read),
 * their text alone (`messagesPlainTexts`, `responsesPlainTexts`). A report of a token per `PLAIN_BYTES_PER_TOKEN` bytes of text or more is
 * believed without counting; a lower one is counted, in slices that let the event loop turn.
 * A backend that reports 0 prompt tokens for a long prompt is not believed.
 * @example
 * const honest = await promptCountPlausible({ kind: "chat", body, model: "gpt-4o" }, usage.prompt_tokens);
 */
export async function promptCountPlausible(
  prompt: PromptTokenBoundParameters,
  reported: number,
  plainTexts?: readonly string[],
): Promise<boolean> {
  const parts = plainTexts
    ? { texts: plainTexts, tokenIds: 0 }
    : promptParts(prompt.kind, prompt.body, { imageTokens: 0 });
  let textBytes = 0;
  for (const text of parts.texts) textBytes += utf8ByteLength(text);
  if (reported >= parts.tokenIds / 2 + textBytes / PLAIN_BYTES_PER_TOKEN) return true;
  const counted = parts.tokenIds + (await countTexts(parts.texts, prompt.model));
  return reported >= counted / 2 - SLACK_TOKENS;
}
