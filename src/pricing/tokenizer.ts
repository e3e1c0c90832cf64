import { createRequire } from "node:module";

/**
 * How text becomes a token count. `o200k_base` (gpt-4o, gpt-4.1, gpt-5, o-series, gpt-oss) and
 * `cl100k_base` (gpt-4, gpt-3.5, OpenAI embeddings) are exact, via gpt-tokenizer; `bytes` is
 * for every other model: it bounds with UTF-8 bytes and estimates with `o200k_base`.
 */
export type TokenizerName = "o200k_base" | "cl100k_base" | "bytes";

type Encoding = { countTokens(text: string, options: { disallowedSpecial: Set<string> }): number };

// Model-name prefixes, most specific first. A model not matched here is "unknown" (bytes).
const MODEL_PREFIXES: readonly (readonly [prefix: string, tokenizer: TokenizerName])[] = [
  ["gpt-4o", "o200k_base"],
  ["chatgpt-4o", "o200k_base"],
  ["gpt-4.1", "o200k_base"],
  ["gpt-4.5", "o200k_base"],
  ["gpt-5", "o200k_base"],
  ["gpt-oss", "o200k_base"],
  ["o1", "o200k_base"],
  ["o3", "o200k_base"],
  ["o4", "o200k_base"],
  ["codex-mini", "o200k_base"],
  ["gpt-4", "cl100k_base"],
  ["gpt-3.5", "cl100k_base"],
  ["text-embedding-3", "cl100k_base"],
  ["text-embedding-ada-002", "cl100k_base"],
];

/**
 * The tokenizer for a model name, or a tokenizer name given directly (a model table may pin
 * one). Case, an `openai/` provider prefix and an `ft:` fine-tune prefix are ignored.
 * @example
 * tokenizerForModel("gpt-4o-mini-2024-07-18") // "o200k_base"
 * tokenizerForModel("llama-3.1-8b-instruct") // "bytes"
 */
export function tokenizerForModel(model: string | undefined): TokenizerName {
  if (model === undefined) return "bytes";
  const name = model
    .trim()
    .toLowerCase()
    .replace(/^openai\//, "")
    .replace(/^ft:/, "");
  if (name === "o200k_base" || name === "o200k_harmony") return "o200k_base";
  if (name === "cl100k_base" || name === "bytes") return name;
  for (const [prefix, tokenizer] of MODEL_PREFIXES) {
    // "o1" must not match "o100-something"; a prefix ends at the name's end or a separator.
    if (name === prefix || (name.startsWith(prefix) && /[-.:_]/.test(name.charAt(prefix.length)))) {
      return tokenizer;
    }
  }
  return "bytes";
}

/**
 * Tokens in `text`: exact for models with a known tokenizer, otherwise an estimate with
 * `o200k_base` (modern 100k–200k vocabularies count within a few percent of it). This is a
 * count for metering output, not an upper bound; for bounds use `promptTokenBound`.
 * Text that looks like special tokens (`<|endoftext|>`) is counted as ordinary text.
 */
export function countTextTokens(text: string, model?: string): number {
  if (text.length === 0) return 0;
  const tokenizer = tokenizerForModel(model);
  return loadEncoding(tokenizer === "bytes" ? "o200k_base" : tokenizer).countTokens(text, plainText);
}

/** UTF-8 length of `text`; byte-level BPE emits at most one token per byte, so this bounds any such count. */
export function utf8ByteLength(text: string): number {
  if (text.length > 32) return Buffer.byteLength(text, "utf8");
  // Short texts (keys, numbers, words) are counted in JS: a body may hold millions of them,
  // and the native call costs more than the loop. A lone surrogate is 3 bytes, as in Buffer.
  let bytes = 0;
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && isLowSurrogate(text.charCodeAt(index + 1))) {
      bytes += 4;
      index++;
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

const plainText = { disallowedSpecial: new Set<string>() };
const encodings = new Map<Exclude<TokenizerName, "bytes">, Encoding>();
const require = createRequire(import.meta.url);

// Loaded on first use, not at import: the vocabularies take ~0.3 s and tens of MB, and many
// gateways never see a model that needs them. (gpt-tokenizer's CommonJS encodings load
// synchronously, which keeps every counting function synchronous.)
function loadEncoding(name: Exclude<TokenizerName, "bytes">): Encoding {
  let encoding = encodings.get(name);
  if (encoding === undefined) {
    encoding = require(`gpt-tokenizer/cjs/encoding/${name}`) as Encoding;
    encodings.set(name, encoding);
  }
  return encoding;
}

/** Counts with a known tokenizer (never `bytes`); used by the prompt bound. */
export function countWithTokenizer(text: string, tokenizer: Exclude<TokenizerName, "bytes">): number {
  return text.length === 0 ? 0 : loadEncoding(tokenizer).countTokens(text, plainText);
}
