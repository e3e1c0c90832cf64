import { TollgateError } from "../errors/index.js";
import { countWithTokenizer, type TokenizerName, tokenizerForModel, utf8ByteLength } from "./tokenizer.js";

/** Which OpenAI-compatible endpoint the request is for. */
export type PromptKind = "chat" | "completion" | "embedding";

export type PromptTokenBoundParameters = {
  kind: PromptKind;
  /** The request body as received (`messages`, `prompt` or `input`, `tools`, …). */
  body: Record<string, unknown>;
  /** Model name or tokenizer name (`o200k_base`, `cl100k_base`, `bytes`); default `body.model`. */
  model?: string;
  /** Tokens one image may count as; default depends on the model (see `imageTokenBound`). */
  imageTokens?: number;
};

/**
 * Tokens the chat template, role markers and reply priming may add, beyond the text itself.
 * Exact tokenizers need little (OpenAI documents 3 per message and 3 per reply); byte bounds
 * cover unknown templates, such as Llama's header tokens and default system preamble.
 */
const OVERHEAD = {
  exact: { perRequest: 8, perMessage: 8, perPrompt: 2, tools: 64 },
  bytes: { perRequest: 64, perMessage: 16, perPrompt: 4, tools: 256 },
} as const;

/**
 * An upper bound on the prompt tokens of a request, never below what the model will count:
 * for models with a known tokenizer (gpt-4o, gpt-4, gpt-3.5, …) the tokenizer's count plus
 * template overhead; for all others the UTF-8 byte length of every text plus overhead (a
 * byte-level BPE emits at most one token per byte). Chat counts every string of every message
 * (roles, names, content parts, tool calls), plus `tools`, `functions` and `response_format`;
 * completions count `prompt` (and `suffix`); embeddings count `input`. Token-id arrays count
 * one per id; each image counts `imageTokens`.
 * Throws `TOLLGATE_REQUEST_INVALID`, naming the field, for a body it cannot bound.
 * @example
 * const bound = promptTokenBound({ kind: "chat", body, model: "gpt-4o-mini" });
 */
export function promptTokenBound(parameters: PromptTokenBoundParameters): number {
  const { kind, body } = parameters;
  const model = parameters.model ?? (typeof body.model === "string" ? body.model : undefined);
  const tokenizer = tokenizerForModel(model);
  const overhead = tokenizer === "bytes" ? OVERHEAD.bytes : OVERHEAD.exact;
  const count = counter(tokenizer);

  if (kind === "chat") {
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0)
      throw invalid("messages", "must be a non-empty array");
    const imageTokens = parameters.imageTokens ?? imageTokenBound(model);
    let total = overhead.perRequest;
    messages.forEach((message, index) => {
      if (typeof message !== "object" || message === null)
        throw invalid(`messages[${index}]`, "must be an object");
      total += overhead.perMessage + countLeaves(message, count, imageTokens, `messages[${index}]`);
    });
    for (const field of ["tools", "functions", "response_format"]) {
      if (body[field] !== undefined && body[field] !== null)
        total += overhead.tools + count(JSON.stringify(body[field]));
    }
    return total;
  }

  const field = kind === "completion" ? "prompt" : "input";
  let total = overhead.perRequest + countPromptInput(body[field], field, count, overhead.perPrompt);
  if (kind === "completion" && typeof body.suffix === "string") total += count(body.suffix);
  return total;
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

function counter(tokenizer: TokenizerName): (text: string) => number {
  if (tokenizer === "bytes") return utf8ByteLength;
  return (text) => countWithTokenizer(text, tokenizer);
}

/** `prompt` / `input`: a string, strings, token ids, or arrays of token ids. */
function countPromptInput(
  value: unknown,
  field: string,
  count: (text: string) => number,
  perPrompt: number,
): number {
  if (typeof value === "string") return perPrompt + count(value);
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid(field, "must be a string, an array of strings, or an array of token ids");
  }
  if (value.every((item) => Number.isInteger(item))) return perPrompt + value.length;
  let total = 0;
  value.forEach((item, index) => {
    if (typeof item === "string") total += perPrompt + count(item);
    else if (Array.isArray(item) && item.every((id) => Number.isInteger(id)))
      total += perPrompt + item.length;
    else throw invalid(`${field}[${index}]`, "must be a string or an array of token ids");
  });
  return total;
}

/**
 * Every string (and number) inside a message counts as text; an image part counts as
 * `imageTokens`; audio and file data count one token per byte of their base64. Iterative, so
 * a deeply nested body cannot exhaust the stack.
 */
function countLeaves(
  root: unknown,
  count: (text: string) => number,
  imageTokens: number,
  path: string,
): number {
  let total = 0;
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const node = pending.pop();
    if (typeof node === "string") total += count(node);
    else if (typeof node === "number" || typeof node === "boolean") total += count(String(node));
    else if (Array.isArray(node)) for (const item of node) pending.push(item);
    else if (typeof node === "object" && node !== null) {
      const part = node as Record<string, unknown>;
      if (part.type === "image_url" || part.type === "input_image") total += imageTokens;
      else if (part.type === "input_audio") total += utf8ByteLength(JSON.stringify(part.input_audio ?? ""));
      else if (part.type === "file") total += fileBytes(part.file, path);
      else for (const value of Object.values(part)) pending.push(value);
    }
  }
  return total;
}

function fileBytes(file: unknown, path: string): number {
  const data = (file as { file_data?: unknown } | undefined)?.file_data;
  if (typeof data !== "string") {
    throw invalid(`${path}.content[].file`, "only inline file_data can be priced before the request runs");
  }
  return utf8ByteLength(data);
}

function invalid(field: string, problem: string): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_REQUEST_INVALID",
    shortMessage: `${field} ${problem}`,
    details: { field },
  });
}
