import { estimatingTokenizer, pieceTokenCounts } from "./countTextTokensChunked.js";
import { type PromptKind, promptParts, TEMPLATE_OVERHEAD, templateOverhead } from "./promptParts.js";
import { DOCUMENT_TOKENS, imageTokenBound } from "./promptTokenBound.js";

export type CountPromptTokensOptions = {
  /** Tokens one image counts as; default `imageTokenBound(model)`, as in `promptTokenBound`. */
  imageTokens?: number;
  /** More top-level fields to read as prompt, as in `promptTokenBound`. */
  extraFields?: readonly string[];
  /** The most one inline document counts as, as in `promptTokenBound`; up to that, one token per byte. */
  documentTokens?: number;
};

/** Longest stretch, in milliseconds, that counting runs before it lets the event loop turn. */
const SLICE_MS = 5;
/** Pieces counted between looks at the clock; an unseen piece of 128 bytes takes ~0.1 ms. */
const PIECES_PER_CHECK = 8;

/**
 * An estimate of the prompt tokens of a request, for charging when the backend reports no
 * prompt usage: never more than the buyer can have used, so OpenAI's documented count. The model
 * tokenizer's count of the values of its messages (not their own keys; `o200k_base` for models without
 * a tokenizer) and of its other prompt fields' JSON, plus OpenAI's template overhead
 * (`TEMPLATE_OVERHEAD.counted`: 3 per message, 1 per name, 3 priming the reply; none for a completion
 * or embeddings input); images and audio count as in the bound, an inline
 * document one token per byte of its data up to the bound's `documentTokens` (its true count is unknown).
 * Never more than `promptTokenBound` of the same body and options. Counts in slices of a few
 * milliseconds, yielding to the event loop between them, in time linear in the body.
 * Throws `TOLLGATE_REQUEST_INVALID`, naming the field, for a body it cannot take apart.
 * @example
 * const promptTokens = usage.promptTokens ?? (await countPromptTokens("chat", body, "gpt-4o"));
 */
export async function countPromptTokens(
  kind: PromptKind,
  body: Record<string, unknown>,
  model?: string,
  options: CountPromptTokensOptions = {},
): Promise<number> {
  const modelName = model ?? (typeof body.model === "string" ? body.model : undefined);
  const documentTokens = options.documentTokens ?? DOCUMENT_TOKENS;
  const parts = promptParts(kind, body, {
    imageTokens: options.imageTokens ?? imageTokenBound(modelName),
    documentTokens: (bytes) => Math.min(bytes, documentTokens),
    extraFields: options.extraFields,
    keys: false,
  });
  return (
    templateOverhead(parts, TEMPLATE_OVERHEAD.counted) +
    parts.mediaTokens +
    parts.tokenIds +
    parts.literalBytes +
    (await countTexts([...parts.texts, ...parts.fields.map((field) => field.json)], modelName))
  );
}

/**
 * The tokens of `texts` by `model`'s tokenizer (`o200k_base` for models without one), counted in
 * slices of a few milliseconds, yielding to the event loop before and between them.
 */
export async function countTexts(texts: readonly string[], model: string | undefined): Promise<number> {
  const tokenizer = estimatingTokenizer(model);
  const cache = new Map<string, number>();
  let total = 0;
  // Taking the body apart was one slice already; counting starts on a fresh one.
  await new Promise(setImmediate);
  let sliceStart = performance.now();
  let sinceCheck = 0;
  for (const text of texts) {
    for (const tokens of pieceTokenCounts(text, tokenizer, cache)) {
      total += tokens;
      if (++sinceCheck < PIECES_PER_CHECK) continue;
      sinceCheck = 0;
      if (performance.now() - sliceStart < SLICE_MS) continue;
      await new Promise(setImmediate);
      sliceStart = performance.now();
    }
  }
  return total;
}
