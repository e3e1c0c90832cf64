/** Up to this many word or punctuation segments are tried as one token (e.g. ".\n\n" is one). */
const maxSegmentsPerToken = 3;

/**
 * Splits text into pieces that each add exactly one token under `countTokens`, so a fake server
 * can stream one token per chunk and stop at any chunk with usage equal to the chunks sent:
 * `countTokens(pieces.slice(0, k).join(""))` is `k` for every `k`, as far as the tokenizer allows.
 * Candidates are cut at word and punctuation boundaries (where BPE tokenizers cut too), longest
 * first; a word worth several tokens is cut inside. Quadratic in the text's length: meant for the
 * few paragraphs of a demo answer.
 */
export function splitIntoTokens(text: string, countTokens: (text: string) => number): string[] {
  const segments = text.match(/\s*[\p{L}\p{N}']+|\s*[^\s\p{L}\p{N}']|\s+/gu) ?? [];
  const pieces: string[] = [];
  let emitted = "";
  let emittedTokens = 0;
  let next = 0;
  // The rest of a segment whose beginning was already emitted as a token of its own.
  let remainder = "";

  const take = (piece: string, tokens: number) => {
    pieces.push(piece);
    emitted += piece;
    emittedTokens = tokens;
  };

  while (remainder.length > 0 || next < segments.length) {
    const candidates: Array<{ text: string; segments: number }> = [];
    let text = remainder;
    let consumed = 0;
    if (remainder.length > 0) candidates.push({ text, segments: 0 });
    while (candidates.length < maxSegmentsPerToken && next + consumed < segments.length) {
      text += segments[next + consumed];
      consumed++;
      candidates.push({ text, segments: consumed });
    }
    const whole = candidates.findLast((piece) => countTokens(emitted + piece.text) === emittedTokens + 1);
    if (whole !== undefined) {
      take(whole.text, emittedTokens + 1);
      next += whole.segments;
      remainder = "";
      continue;
    }

    // No run of whole segments is one token: cut inside the first one, by code point.
    const first = remainder.length > 0 ? remainder : (segments[next++] ?? "");
    const ends = codePointEnds(first);
    let cut = ends.findLast(
      (end) => end < first.length && countTokens(emitted + first.slice(0, end)) === emittedTokens + 1,
    );
    // The tokenizer re-read earlier text; resynchronise on a single code point.
    cut ??= ends[0] ?? first.length;
    const piece = first.slice(0, cut);
    take(piece, countTokens(emitted + piece));
    remainder = first.slice(cut);
  }
  return pieces;
}

function codePointEnds(text: string): number[] {
  const ends: number[] = [];
  let end = 0;
  for (const char of text) {
    end += char.length;
    ends.push(end);
  }
  return ends;
}
