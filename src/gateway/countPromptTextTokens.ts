import { countTextTokens } from "../pricing/index.js";

/** Characters counted between two turns of the event loop. */
const SLICE_CHARS = 16_384;
/** Longer runs without whitespace are counted in pieces: the tokenizer is quadratic on them. */
const RUN_CHARS = 96;
const LONG_RUN = new RegExp(`(\\S{${RUN_CHARS + 1},})`);

/**
 * The tokens of a prompt's text with the model's tokenizer (an o200k estimate for models
 * without a known one), counted in slices with a turn of the event loop between them, so a
 * multi-megabyte prompt never stalls other requests. Used when a backend reports no prompt usage.
 */
export async function countPromptTextTokens(text: string, model: string): Promise<number> {
  let total = 0;
  let start = 0;
  while (start < text.length) {
    let end = Math.min(text.length, start + SLICE_CHARS);
    // Cut before a space, so words keep the space the tokenizer attaches to them.
    if (end < text.length) {
      const space = text.lastIndexOf(" ", end);
      if (space > start + SLICE_CHARS / 2) end = space;
    }
    const parts = text.slice(start, end).split(LONG_RUN);
    parts.forEach((part, index) => {
      if (index % 2 === 0) total += countTextTokens(part, model);
      else
        for (let at = 0; at < part.length; at += RUN_CHARS)
          total += countTextTokens(part.slice(at, at + RUN_CHARS), model);
    });
    start = end;
    if (start < text.length) await new Promise((resolve) => setImmediate(resolve));
  }
  return total;
}
