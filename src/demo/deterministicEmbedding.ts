import { hashText } from "./hashText.js";

/**
 * A unit vector derived from the text alone: the same text always gets the same vector, so
 * embeddings from the demo and mock backends can be asserted on. It carries no meaning.
 */
export function deterministicEmbedding(text: string, dimensions = 16): number[] {
  let state = hashText(text) || 1;
  const values: number[] = [];
  for (let index = 0; index < dimensions; index++) {
    // xorshift32
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    values.push(state / 0xffffffff - 0.5);
  }
  const norm = Math.hypot(...values) || 1;
  return values.map((value) => Math.fround(value / norm));
}
