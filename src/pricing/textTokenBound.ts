import { type ExactTokenizer, isSinglePiece, textPieces } from "./textPieces.js";
import { countWithTokenizer, type TokenizerName, utf8ByteLength } from "./tokenizer.js";

/**
 * Longest piece, in UTF-8 bytes, counted exactly. gpt-tokenizer merges one piece in time
 * quadratic in its bytes (a 180 KB run of CJK took ~13 s), so longer pieces count by bytes.
 */
export const EXACT_PIECE_BYTES = 64;

/**
 * Work one request may spend counting exactly: each distinct piece costs its bytes squared (BPE
 * merging) plus a fixed `PIECE_WORK` (a piece outside the vocabulary costs tens of microseconds
 * whatever its length). The budget keeps a quote to a few tens of milliseconds whatever the text's
 * shape (a 120 KB body of distinct mixed-case words took ~1 s to count exactly) and covers about
 * a thousand distinct words; past it, pieces count by their bytes. Deterministic, so a 402 and
 * its paid retry quote the same.
 */
export const EXACT_WORK_BUDGET = 500_000;
const PIECE_WORK = 400;

/** The exact-counting work left for one request; share one across its texts. */
export type ExactWork = { remaining: number };

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
  work: ExactWork = { remaining: EXACT_WORK_BUDGET },
): number {
  if (tokenizer === "bytes") return utf8ByteLength(text);
  // Why this is a bound: gpt-tokenizer's count is the sum, over the pieces its split regex
  // cuts, of each piece's BPE length, and a byte-level BPE piece never has more tokens than
  // bytes. We cut with the same regex and add, per piece, either its bytes or (short pieces
  // the regex keeps whole on their own) its exact count, so every term is ≥ the exact term.
  let total = 0;
  for (const piece of textPieces(text, tokenizer)) total += pieceTokenBound(piece, tokenizer, cache, work);
  return total;
}

/**
 * An upper bound on the tokens of one piece that `textPieces` cut: its exact count while the
 * request's `work` lasts and the piece is short, otherwise its UTF-8 bytes.
 */
export function pieceTokenBound(
  piece: string,
  tokenizer: ExactTokenizer,
  cache: Map<string, number>,
  work: ExactWork,
): number {
  const bytes = utf8ByteLength(piece);
  if (bytes <= 1 || bytes > EXACT_PIECE_BYTES) return bytes;
  let tokens = cache.get(piece);
  if (tokens === undefined) {
    work.remaining -= bytes * bytes + PIECE_WORK;
    if (work.remaining < 0) return bytes;
    tokens = isSinglePiece(piece, tokenizer) ? countWithTokenizer(piece, tokenizer) : bytes;
    cache.set(piece, tokens);
  }
  return tokens;
}
