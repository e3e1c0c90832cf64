import type { SeededRandom } from "../../protocol/testing/seededRandom.js";

// Ranges chosen to stress byte-level BPE: 1- to 4-byte UTF-8, combining marks, joiners,
// lone surrogates, whitespace runs and text that looks like special tokens.
const RANGES: readonly (readonly [number, number])[] = [
  [0x20, 0x7e], // ASCII
  [0x00, 0x1f], // control characters
  [0xc0, 0x17f], // Latin with accents
  [0x370, 0x4ff], // Greek, Cyrillic
  [0x300, 0x36f], // combining marks
  [0x600, 0x6ff], // Arabic
  [0x900, 0x97f], // Devanagari
  [0x4e00, 0x9fff], // CJK
  [0xac00, 0xd7a3], // Hangul
  [0xd800, 0xdfff], // lone surrogates
  [0x1f300, 0x1faff], // emoji
  [0x10000, 0x10ffff], // anything astral
];
const FRAGMENTS = [
  " ",
  "  ",
  "\n",
  "\n\n",
  "\t",
  "\u200d",
  "<|endoftext|>",
  "<|im_start|>",
  "'s",
  "1234567",
  "    ",
];

/** A random string of up to `maxLength` pieces mixing scripts, emoji, whitespace and oddities. */
export function randomText(random: SeededRandom, maxLength: number): string {
  let text = "";
  const pieces = random.int(0, maxLength);
  for (let i = 0; i < pieces; i++) {
    if (random.next() < 0.15) {
      text += random.pick(FRAGMENTS);
      continue;
    }
    const [low, high] = random.pick(RANGES);
    const codePoint = random.int(low, high);
    // Lone surrogates are legal in JS strings (and arrive in JSON as \ud800 escapes).
    text +=
      codePoint >= 0xd800 && codePoint <= 0xdfff
        ? String.fromCharCode(codePoint)
        : String.fromCodePoint(codePoint);
  }
  return text;
}
