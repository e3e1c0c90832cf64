import { countTextTokens } from "../pricing/index.js";

/** Characters counted between two turns of the event loop. */
const SLICE_CHARS = 16_384;
/** Longer runs without whitespace are counted in pieces: the tokenizer is quadratic on them. */
const RUN_CHARS = 96;

/**
 * The tokens of a prompt's text with the model's tokenizer (an o200k estimate for models
 * without a known one), counted in slices with a turn of the event loop between them, so a
 * multi-megabyte prompt never stalls other requests. Used when a backend reports no prompt usage.
 */
export async function countPromptTextTokens(text: string, model: string): Promise<number> {
  let total = 0;
  for (let start = 0; start < text.length; start += SLICE_CHARS) {
    const slice = text.slice(start, start + SLICE_CHARS);
    for (const piece of slice.split(/(\s+)/)) {
      if (piece.length === 0) continue;
      for (let at = 0; at < piece.length; at += RUN_CHARS)
        total += countTextTokens(piece.slice(at, at + RUN_CHARS), model);
    }
    if (start + SLICE_CHARS < text.length) await new Promise((resolve) => setImmediate(resolve));
  }
  return total;
}
