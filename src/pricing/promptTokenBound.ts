import {
  type PromptKind,
  type PromptParts,
  promptParts,
  promptTextBytes,
  TEMPLATE_OVERHEAD,
  templateOverhead,
} from "./promptParts.js";
import { type ExactTokenizer, textPieces } from "./textPieces.js";
import { EXACT_WORK_BUDGET, type ExactWork, pieceTokenBound } from "./textTokenBound.js";
import { tokenizerForModel } from "./tokenizer.js";

export type { PromptKind } from "./promptParts.js";

export type PromptTokenBoundParameters = {
  kind: PromptKind;
  /** The request body as received (`messages`, `prompt` or `input`, `tools`, …). */
  body: Record<string, unknown>;
  /** Model name or tokenizer name (`o200k_base`, `cl100k_base`, `bytes`); default `body.model`. */
  model?: string;
  /** Tokens one image may count as; default depends on the model (see `imageTokenBound`). */
  imageTokens?: number;
  /**
   * Tokens one inline document (a file's data: a PDF) may count as, whatever its size: its pages' text
   * and images, which its bytes do not bound. At most the model's context window. Default
   * `DOCUMENT_TOKENS`.
   */
  documentTokens?: number;
  /**
   * More top-level fields the backend may render into the prompt (vLLM's `documents` or
   * `chat_template_kwargs`, …); each counts as the larger of its JSON and its strings.
   * Chat always counts `tools`, `functions`, `response_format`, `tool_choice` and `function_call`.
   */
  extraFields?: readonly string[];
  /** Text counted exactly, in UTF-8 bytes plus 8 per text; past it every text counts by bytes. Default 128 KiB. */
  exactTextBytes?: number;
};

/**
 * Tokens an inline document may count as when the model's context window is not known: the largest
 * window sold today. A compressed PDF of a few kilobytes can read as a hundred thousand tokens.
 */
export const DOCUMENT_TOKENS = 1_000_000;

/** Text a request may carry before its bound falls back to bytes, keeping a quote to ~0.1 s of CPU. */
export const EXACT_TEXT_BYTES = 128 * 1024;
/** What one text costs to bound exactly beyond its bytes, in bytes' worth of time. */
const TEXT_COST_BYTES = 8;
/**
 * Exact-counting work (in `EXACT_WORK_BUDGET`'s units, a millisecond or two) done before the event
 * loop may turn, so quotes of large prompts, even several at once, do not hold up other requests.
 * Counted, not timed: the same body always pauses at the same pieces.
 */
export const SLICE_WORK = 20_000;
/** What cutting one piece off a text and looking it up costs, in the same units. */
const PIECE_STEP_WORK = 8;

/**
 * An upper bound on the prompt tokens of a request, never below what the model will count, in
 * time linear in the body: for models with a known tokenizer (gpt-4o, gpt-4, gpt-3.5, …) each
 * text's `textTokenBound` plus template overhead; for all others the UTF-8 byte length of every
 * text plus overhead (a byte-level BPE emits at most one token per byte). Chat counts every key
 * and value of every message (roles, names, content parts, tool calls), plus `tools`,
 * `functions`, `response_format`, `tool_choice`, `function_call` and `extraFields`; completions
 * count `prompt` (and `suffix`); embeddings count `input`. Token ids count one each; each image
 * counts `imageTokens`; inline audio one per byte; each inline document (file data) `documentTokens`. Exact counting runs in
 * slices of bounded work (`SLICE_WORK`), letting the event loop turn between them.
 * Rejects with `TOLLGATE_REQUEST_INVALID`, naming the field, for a body it cannot bound.
 * @example
 * const bound = await promptTokenBound({ kind: "chat", body, model: "gpt-4o-mini", extraFields: ["documents"] });
 */
export async function promptTokenBound(parameters: PromptTokenBoundParameters): Promise<number> {
  const { kind, body } = parameters;
  const model = parameters.model ?? (typeof body.model === "string" ? body.model : undefined);
  const documentTokens = parameters.documentTokens ?? DOCUMENT_TOKENS;
  const parts = promptParts(kind, body, {
    imageTokens: parameters.imageTokens ?? imageTokenBound(model),
    documentTokens: () => documentTokens,
    extraFields: parameters.extraFields,
  });
  const tokenizer = tokenizerForModel(model);
  const overhead = tokenizer === "bytes" ? TEMPLATE_OVERHEAD.bytes : TEMPLATE_OVERHEAD.exact;
  const bytes = promptTextBytes(parts);
  // Each text costs a little on its own, so a body of many tiny texts also counts by bytes.
  const exactCost = bytes.all + TEXT_COST_BYTES * (parts.texts.length + parts.fields.length);
  const exact = tokenizer !== "bytes" && exactCost <= (parameters.exactTextBytes ?? EXACT_TEXT_BYTES);
  const text = exact ? await textBound(parts, tokenizer) : bytes.bound;
  return templateOverhead(parts, overhead) + parts.mediaTokens + parts.tokenIds + text;
}

/**
 * Tokens one image may count as. OpenAI's tiling caps gpt-4o-class images at ~1.5k tokens and
 * patch-based models at ~3.8k, but gpt-4o-mini multiplies its image tokens to ~48k; open
 * models such as Qwen2.5-VL reach 16k at their default resolution.
 */
export function imageTokenBound(model: string | undefined): number {
  const name = (model ?? "").toLowerCase().replace(/^openai\//, "");
  if (name.startsWith("gpt-4o-mini")) return 48_169;
  return tokenizerForModel(model) === "bytes" ? 16_384 : 4_000;
}

// Each text's `textTokenBound`, one piece at a time, with one cache and one work budget for the
// request's texts in the order they were always summed, so the budget runs out at the same piece.
async function textBound(parts: PromptParts, tokenizer: ExactTokenizer): Promise<number> {
  const cache = new Map<string, number>();
  const work: ExactWork = { remaining: EXACT_WORK_BUDGET };
  let sliceWork = 0;
  const sum = async (texts: readonly string[]) => {
    let total = 0;
    for (const text of texts) {
      for (const piece of textPieces(text, tokenizer)) {
        const before = work.remaining;
        total += pieceTokenBound(piece, tokenizer, cache, work);
        // A piece past the budget only lowers `remaining` below zero; it is not counted exactly.
        sliceWork += PIECE_STEP_WORK + (work.remaining >= 0 ? before - work.remaining : 0);
        if (sliceWork < SLICE_WORK) continue;
        sliceWork = 0;
        await new Promise(setImmediate);
      }
    }
    return total;
  };
  let total = parts.literalBytes + (await sum(parts.texts));
  for (const field of parts.fields) {
    const leaves = field.literalBytes + (await sum(field.leaves));
    total += Math.max(await sum([field.json]), leaves);
  }
  return total;
}
