import { TollgateError } from "../errors/index.js";
import { utf8ByteLength } from "./tokenizer.js";

/** Which OpenAI-compatible endpoint the request is for. */
export type PromptKind = "chat" | "completion" | "embedding";

/** A top-level field a backend may render into the prompt, as its JSON and as its separate leaves. */
export type PromptField = { json: string; leaves: string[]; literalBytes: number };

/** What a request asks the model to read, taken apart so it can be bounded or counted. */
export type PromptParts = {
  /** Strings the model reads as text (keys and values alike), each counted on its own. */
  texts: string[];
  /** Top-level fields such as `tools`, each counted as the larger of its JSON and its strings. */
  fields: PromptField[];
  /** Numbers, booleans, nulls and brackets read as text: one token per character at most (all ASCII). */
  literalBytes: number;
  /** Tokens for images (`imageTokens` each), inline audio (one per byte) and documents (`documentTokens` each). */
  mediaTokens: number;
  /** Token ids sent as numbers in `prompt` or `input`, one token each. */
  tokenIds: number;
  messages: number;
  /** Messages that carry a `name`. */
  names: number;
  prompts: number;
};

export type PromptPartsOptions = {
  /** Tokens one image counts as. */
  imageTokens: number;
  /**
   * Tokens one inline document (a file's data) counts as, from its data's UTF-8 bytes; default one per
   * byte. A document's bytes do not bound what the model reads of it: a compressed PDF's pages read as
   * many times its size, and each page may be read as an image besides.
   */
  documentTokens?: ((bytes: number) => number) | undefined;
  /** More top-level fields to read as prompt, beyond the defaults for the kind. */
  extraFields?: readonly string[] | undefined;
  /**
   * Whether the keys of messages, content parts and files read as text (default true): a template may
   * print them. False takes only their values, as OpenAI's documented count does; an object inside a
   * value (a tool call's input) is printed as JSON, and its keys are always read.
   */
  keys?: boolean | undefined;
};

/** Top-level chat fields that chat templates render into the prompt. */
export const DEFAULT_CHAT_PROMPT_FIELDS = [
  "tools",
  "functions",
  "response_format",
  "tool_choice",
  "function_call",
] as const;

/**
 * Tokens the chat template, role markers and reply priming may add, beyond the text itself.
 * `exact` and `bytes` are bounds, for the quote: exact tokenizers need little, byte bounds cover
 * unknown templates, such as Llama's header tokens and default system preamble. `counted` is what
 * OpenAI documents for its chat models ("How to count tokens with tiktoken", OpenAI cookbook): 3 per
 * message, 1 more for a message's `name`, 3 priming the reply, and nothing for a field's JSON or a
 * completion's prompt; the gateway's own count of a prompt no backend reported uses it.
 */
export const TEMPLATE_OVERHEAD = {
  exact: { perRequest: 8, perReply: 0, perMessage: 8, perName: 0, perPrompt: 2, perField: 64 },
  bytes: { perRequest: 64, perReply: 0, perMessage: 16, perName: 0, perPrompt: 4, perField: 256 },
  counted: { perRequest: 0, perReply: 3, perMessage: 3, perName: 1, perPrompt: 0, perField: 0 },
} as const;

/** The template tokens `parts` may add, with the overhead table for exact or byte counting. */
export function templateOverhead(
  parts: PromptParts,
  overhead: (typeof TEMPLATE_OVERHEAD)[keyof typeof TEMPLATE_OVERHEAD],
) {
  return (
    overhead.perRequest +
    // A chat request has a reply to prime; a completion or embeddings input has none.
    (parts.messages > 0 ? overhead.perReply : 0) +
    overhead.perMessage * parts.messages +
    overhead.perName * parts.names +
    overhead.perPrompt * parts.prompts +
    overhead.perField * parts.fields.length
  );
}

/**
 * Takes a request body apart into the text, media and token ids the model will read. Chat reads
 * every key and value of every message; a content part's type may price only the field holding
 * its data (`image_url`, `input_audio`, `file.file_data`), its other fields still read as text.
 * Throws `TOLLGATE_REQUEST_INVALID`, naming the field, for a body it cannot take apart.
 */
export function promptParts(
  kind: PromptKind,
  body: Record<string, unknown>,
  options: PromptPartsOptions,
): PromptParts {
  const parts = emptyParts();
  const primary = kind === "chat" ? "messages" : kind === "completion" ? "prompt" : "input";
  if (kind === "chat") addMessages(parts, body.messages, options);
  else addPromptInput(parts, body[primary], primary);
  if (kind === "completion" && typeof body.suffix === "string") parts.texts.push(body.suffix);

  const fields = new Set<string>([
    ...(kind === "chat" ? DEFAULT_CHAT_PROMPT_FIELDS : []),
    ...(options.extraFields ?? []),
  ]);
  for (const field of fields) {
    const value = body[field];
    if (field === primary || field === "suffix" || value === undefined || value === null) continue;
    const leaves = emptyParts();
    addLeaves(leaves, value);
    parts.fields.push({
      json: JSON.stringify(value),
      leaves: leaves.texts,
      literalBytes: leaves.literalBytes,
    });
  }
  return parts;
}

/** UTF-8 bytes of the texts in `parts`: all of them, and the byte bound (a field's larger form). */
export function promptTextBytes(parts: PromptParts): { all: number; bound: number } {
  let all = parts.literalBytes;
  for (const text of parts.texts) all += utf8ByteLength(text);
  let bound = all;
  for (const field of parts.fields) {
    const json = utf8ByteLength(field.json);
    let leaves = field.literalBytes;
    for (const leaf of field.leaves) leaves += utf8ByteLength(leaf);
    all += json + leaves;
    bound += Math.max(json, leaves);
  }
  return { all, bound };
}

function emptyParts(): PromptParts {
  return {
    texts: [],
    fields: [],
    literalBytes: 0,
    mediaTokens: 0,
    tokenIds: 0,
    messages: 0,
    names: 0,
    prompts: 0,
  };
}

function addMessages(parts: PromptParts, messages: unknown, options: PromptPartsOptions) {
  if (!Array.isArray(messages) || messages.length === 0)
    throw invalid("messages", "must be a non-empty array");
  const keys = options.keys !== false;
  messages.forEach((message, index) => {
    if (typeof message !== "object" || message === null || Array.isArray(message))
      throw invalid(`messages[${index}]`, "must be an object");
    parts.messages++;
    if ("name" in message) parts.names++;
    // The message itself is never a content part, whatever its `type` says: all of it is text.
    for (const [key, value] of Object.entries(message)) {
      if (keys) parts.texts.push(key);
      if (key === "content" && Array.isArray(value)) {
        for (const part of value) addContentPart(parts, part, options, `messages[${index}]`);
      } else addLeaves(parts, value);
    }
  });
}

/** One element of a message's `content` array. */
function addContentPart(parts: PromptParts, part: unknown, options: PromptPartsOptions, path: string) {
  const keys = options.keys !== false;
  if (typeof part !== "object" || part === null || Array.isArray(part)) return addLeaves(parts, part);
  const type = (part as { type?: unknown }).type;
  const isImage = type === "image_url" || type === "input_image";
  if (isImage) parts.mediaTokens += options.imageTokens;
  for (const [key, value] of Object.entries(part)) {
    if (keys) parts.texts.push(key);
    if (isImage && key === "image_url") continue;
    if (type === "input_audio" && key === "input_audio") {
      parts.mediaTokens += utf8ByteLength(JSON.stringify(value ?? ""));
    } else if (type === "file" && key === "file") addFile(parts, value, path, options);
    else addLeaves(parts, value);
  }
  if (type === "file" && !("file" in part)) addFile(parts, undefined, path, options);
}

function addFile(parts: PromptParts, file: unknown, path: string, options: PromptPartsOptions) {
  const data = (file as { file_data?: unknown } | null | undefined)?.file_data;
  if (typeof data !== "string") {
    throw invalid(`${path}.content[].file`, "only inline file_data can be priced before the request runs");
  }
  const bytes = utf8ByteLength(data);
  parts.mediaTokens += options.documentTokens ? options.documentTokens(bytes) : bytes;
  const keys = options.keys !== false;
  for (const [key, value] of Object.entries(file as object)) {
    if (keys) parts.texts.push(key);
    if (key !== "file_data") addLeaves(parts, value);
  }
}

/**
 * Every string inside `root` (values and the keys of its objects) as text, and every number, boolean, null and
 * bracket pair as literal bytes. Iterative, with one frame per array or object rather than one per value,
 * so neither deep nesting nor millions of values costs more than a pass.
 */
function addLeaves(parts: PromptParts, root: unknown) {
  const frames: { values: readonly unknown[]; next: number }[] = [{ values: [root], next: 0 }];
  for (let frame = frames.at(-1); frame !== undefined; frame = frames.at(-1)) {
    if (frame.next === frame.values.length) {
      frames.pop();
      continue;
    }
    const node = frame.values[frame.next++];
    if (typeof node === "string") {
      if (node.length > 0) parts.texts.push(node);
    } else if (typeof node === "number" || typeof node === "boolean" || node === null) {
      parts.literalBytes += String(node).length;
    } else if (typeof node === "object") {
      // A backend that renders the value as JSON prints its brackets too.
      parts.literalBytes += 2;
      if (Array.isArray(node)) frames.push({ values: node, next: 0 });
      else {
        // Its keys too: an object inside a value (a tool call's input) is printed as JSON, keys and all.
        for (const key of Object.keys(node)) parts.texts.push(key);
        frames.push({ values: Object.values(node), next: 0 });
      }
    }
  }
}

/** `prompt` / `input`: a string, strings, token ids, or arrays of token ids. */
function addPromptInput(parts: PromptParts, value: unknown, field: string) {
  if (typeof value === "string") {
    parts.prompts++;
    parts.texts.push(value);
    return;
  }
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid(field, "must be a string, an array of strings, or an array of token ids");
  }
  if (value.every((item) => Number.isInteger(item))) {
    parts.prompts++;
    parts.tokenIds += value.length;
    return;
  }
  value.forEach((item, index) => {
    parts.prompts++;
    if (typeof item === "string") parts.texts.push(item);
    else if (Array.isArray(item) && item.every((id) => Number.isInteger(id))) parts.tokenIds += item.length;
    else throw invalid(`${field}[${index}]`, "must be a string or an array of token ids");
  });
}

function invalid(field: string, problem: string): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_REQUEST_INVALID",
    shortMessage: `${field} ${problem}`,
    details: { field },
  });
}
