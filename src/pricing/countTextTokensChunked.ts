import { type ExactTokenizer, textPieces } from "./textPieces.js";
import { EXACT_PIECE_BYTES } from "./textTokenBound.js";
import { countWithTokenizer, tokenizerForModel, utf8ByteLength } from "./tokenizer.js";

/**
 * Tokens in `text`, like `countTextTokens` but in time linear in its length: pieces longer
 * than `EXACT_PIECE_BYTES` (long runs of CJK, emoji or one letter) count in chunks of at most
 * that many bytes, which estimates closely and never exceeds `textTokenBound` of the text.
 * Models without a known tokenizer estimate with `o200k_base`.
 * @example
 * countTextTokensChunked("文".repeat(200_000), "gpt-4o") // returns in milliseconds, not seconds
 */
export function countTextTokensChunked(text: string, model?: string): number {
  let total = 0;
  for (const tokens of pieceTokenCounts(text, estimatingTokenizer(model))) total += tokens;
  return total;
}

/** The tokenizer that counts for `model`: its own, or `o200k_base` for models counted by bytes. */
export function estimatingTokenizer(model: string | undefined): ExactTokenizer {
  const tokenizer = tokenizerForModel(model);
  return tokenizer === "bytes" ? "o200k_base" : tokenizer;
}

/**
 * The token count of each piece of `text`, one piece (or chunk of a long piece) at a time, so a
 * caller can pause between them. Each count is at most the piece's UTF-8 bytes.
 */
export function* pieceTokenCounts(
  text: string,
  tokenizer: ExactTokenizer,
  cache: Map<string, number> = new Map(),
): Generator<number, void, undefined> {
  for (const piece of textPieces(text, tokenizer)) {
    if (piece.length <= EXACT_PIECE_BYTES && utf8ByteLength(piece) <= EXACT_PIECE_BYTES) {
      yield cachedCount(piece, tokenizer, cache);
      continue;
    }
    for (const chunk of byteChunks(piece, EXACT_PIECE_BYTES)) yield cachedCount(chunk, tokenizer, cache);
  }
}

function cachedCount(text: string, tokenizer: ExactTokenizer, cache: Map<string, number>): number {
  let tokens = cache.get(text);
  if (tokens === undefined) {
    tokens = countWithTokenizer(text, tokenizer);
    cache.set(text, tokens);
  }
  return tokens;
}

// Cuts between code points, never inside a surrogate pair, so the chunks' bytes sum to the text's.
function* byteChunks(text: string, maxBytes: number): Generator<string, void, undefined> {
  let start = 0;
  let bytes = 0;
  let index = 0;
  while (index < text.length) {
    const codePoint = text.codePointAt(index) ?? 0;
    const units = codePoint > 0xffff ? 2 : 1;
    const size = codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) {
      yield text.slice(start, index);
      start = index;
      bytes = 0;
    }
    bytes += size;
    index += units;
  }
  if (start < text.length) yield text.slice(start);
}
