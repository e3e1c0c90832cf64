/**
 * The characters of a text as `input_characters` counts them: Unicode code points, so a character
 * outside the Basic Multilingual Plane (an emoji, a rare CJK ideograph) is one, not the two UTF-16
 * units JavaScript's `length` counts; a lone surrogate is one too.
 * @example
 * countCharacters("héllo 👋") // 7
 */
export function countCharacters(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}
