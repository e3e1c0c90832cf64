import { createRequire } from "node:module";
import type { TokenizerName } from "./tokenizer.js";

/** A tokenizer that counts exactly (not the `bytes` bound). */
export type ExactTokenizer = Exclude<TokenizerName, "bytes">;

type SplitRegexes = { O200K_TOKEN_SPLIT_REGEX: RegExp; CL100K_TOKEN_SPLIT_REGEX: RegExp };

const require = createRequire(import.meta.url);
let splitRegexes: SplitRegexes | undefined;
const stickyRegexes = new Map<ExactTokenizer, RegExp>();

/**
 * Cuts `text` exactly where gpt-tokenizer's split regex cuts it before byte-pair encoding, and
 * yields any text the regex would skip as a piece of its own, so the pieces concatenate to `text`.
 * gpt-tokenizer's count of `text` (special tokens read as text) is the sum of its pieces' BPE counts.
 */
export function* textPieces(text: string, tokenizer: ExactTokenizer): Generator<string, void, undefined> {
  let end = 0;
  // matchAll clones the regex, so interleaved generators never share a lastIndex.
  for (const match of text.matchAll(splitRegex(tokenizer))) {
    if (match.index > end) yield text.slice(end, match.index);
    yield match[0];
    end = match.index + match[0].length;
  }
  if (end < text.length) yield text.slice(end);
}

/** Whether the split regex, run on `piece` alone, keeps it whole (so counting it alone is its BPE count). */
export function isSinglePiece(piece: string, tokenizer: ExactTokenizer): boolean {
  let sticky = stickyRegexes.get(tokenizer);
  if (sticky === undefined) {
    sticky = new RegExp(splitRegex(tokenizer).source, "uy");
    stickyRegexes.set(tokenizer, sticky);
  }
  sticky.lastIndex = 0;
  const match = sticky.exec(piece);
  return match !== null && match[0].length === piece.length;
}

// The very regexes gpt-tokenizer's encodings split with, loaded on first use like the encodings.
function splitRegex(tokenizer: ExactTokenizer): RegExp {
  splitRegexes ??= require("gpt-tokenizer/cjs/encodingParams/constants") as SplitRegexes;
  return tokenizer === "o200k_base"
    ? splitRegexes.O200K_TOKEN_SPLIT_REGEX
    : splitRegexes.CL100K_TOKEN_SPLIT_REGEX;
}
