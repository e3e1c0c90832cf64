import { type ExactTokenizer, isSinglePiece, textPieces } from "./textPieces.js";
import { countWithTokenizer, type TokenizerName, utf8ByteLength } from "./tokenizer.js";

/**
 * Longest piece, in UTF-8 bytes, counted exactly. gpt-tokenizer merges one piece in time
 * quadratic in its bytes (a 180 KB run of CJK took ~13 s), so longer pieces count by bytes.
 */
export const EXACT_PIECE_BYTES = 128;

/**
 * An upper bound on the tokens of `text`, computed in time linear in its length: the UTF-8
 * byte length for `bytes`, otherwise the exact count of every short piece and the bytes of
 * every long one. `cache` may be shared across the texts of one request.
 * @example
 * textTokenBound("a".repeat(1_000_000), "o200k_base") // 1000000, in about a millisecond
 */
export function textTokenBound(
  text: string,
  tokenizer: TokenizerName,
  cache: Map<string, number> = new Map(),
): number {
  if (tokenizer === "bytes") return utf8ByteLength(text);
  // Why this is a bound: gpt-tokenizer's count is the sum, over the pieces its split regex
  // cuts, of each piece's BPE length, and a byte-level BPE piece never has more tokens than
  // bytes. We cut with the same regex and add, per piece, either its bytes or (short pieces
  // the regex keeps whole on their own) its exact count, so every term is ≥ the exact term.
  let total = 0;
  for (const piece of textPieces(text, tokenizer)) total += pieceTokenBound(piece, tokenizer, cache);
  return total;
}

function pieceTokenBound(piece: string, tokenizer: ExactTokenizer, cache: Map<string, number>): number {
  const bytes = utf8ByteLength(piece);
  if (bytes <= 1 || bytes > EXACT_PIECE_BYTES) return bytes;
  let tokens = cache.get(piece);
  if (tokens === undefined) {
    tokens = isSinglePiece(piece, tokenizer) ? countWithTokenizer(piece, tokenizer) : bytes;
    cache.set(piece, tokens);
  }
  return tokens;
}
