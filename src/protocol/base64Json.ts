import { ReasonCode } from "./reasonCodes.js";

/** Limits applied before any JSON reaches a schema. */
export type Base64JsonLimits = {
  /** Longest accepted encoded value, in characters. */
  maxLength: number;
  /** Deepest accepted nesting of objects and arrays. */
  maxDepth: number;
};

/** 16 KiB of header and 32 levels of nesting: far above any honest x402 payload. */
export const DEFAULT_BASE64_JSON_LIMITS: Base64JsonLimits = { maxLength: 16 * 1024, maxDepth: 32 };

export type DecodeBase64JsonReturnType =
  /** `text`: the JSON as decoded, for checks on what it spells (a `\u0000` escape). */
  { ok: true; value: unknown; text: string } | { ok: false; reason: ReasonCode; message: string };

const standardAlphabet = /^[A-Za-z0-9+/]*={0,2}$/;
const urlSafeAlphabet = /^[A-Za-z0-9_-]*={0,2}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Encodes a value as standard, padded base64 of its UTF-8 JSON, as x402 headers carry it. */
export function encodeBase64Json(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64");
}

/**
 * Decodes base64 (standard or URL-safe, padding optional) UTF-8 JSON from an untrusted header.
 * Never throws: every failure is a result naming what was wrong.
 */
export function decodeBase64Json(
  encoded: string,
  limits: Base64JsonLimits = DEFAULT_BASE64_JSON_LIMITS,
): DecodeBase64JsonReturnType {
  const value = encoded.trim();
  if (value.length > limits.maxLength) {
    return fail(ReasonCode.paymentHeaderTooLarge, `longer than ${limits.maxLength} characters`);
  }
  if (value.length === 0) return fail(ReasonCode.paymentHeaderMissing, "empty");
  if (!(standardAlphabet.test(value) || urlSafeAlphabet.test(value)) || value.length % 4 === 1) {
    return fail(ReasonCode.paymentHeaderNotBase64, "not base64 (standard or URL-safe)");
  }
  let text: string;
  try {
    text = utf8.decode(Buffer.from(value, "base64"));
  } catch {
    return fail(ReasonCode.paymentHeaderNotBase64, "base64 does not decode to UTF-8 text");
  }
  const depth = maxNestingDepth(text);
  if (depth > limits.maxDepth) {
    return fail(ReasonCode.paymentHeaderTooDeep, `JSON nested deeper than ${limits.maxDepth} levels`);
  }
  // A `__proto__` key is spelled out or written with `\u` escapes: without either, none can be there,
  // and the text is parsed without the reviver (which makes parsing about three times slower).
  const mayHidePrototype = text.includes("__proto__") || text.includes("\\u");
  try {
    return {
      ok: true,
      value: mayHidePrototype ? JSON.parse(text, rejectPrototypeKeys) : JSON.parse(text),
      text,
    };
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return fail(ReasonCode.paymentHeaderNotJson, `not valid JSON (${detail})`);
  }
}

function fail(reason: ReasonCode, message: string): DecodeBase64JsonReturnType {
  return { ok: false, reason, message };
}

// `__proto__` as an own key survives JSON.parse but turns into a prototype on any later
// assignment-based copy; no x402 object has such a key, so refuse it outright.
function rejectPrototypeKeys(key: string, value: unknown): unknown {
  if (key === "__proto__") throw new Error('key "__proto__" is not allowed');
  return value;
}

/** Deepest `{`/`[` nesting outside string literals; a linear scan, no recursion. */
function maxNestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c)
        i++; // backslash: skip the escaped character
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) inString = true;
    else if (char === 0x7b || char === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (char === 0x7d || char === 0x5d) depth--;
  }
  return deepest;
}
