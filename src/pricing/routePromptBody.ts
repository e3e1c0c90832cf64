import { TollgateError } from "../errors/index.js";
import { promptParts } from "./promptParts.js";

// The Anthropic Messages API (https://docs.anthropic.com/en/api/messages) and the OpenAI Responses
// API (https://platform.openai.com/docs/api-reference/responses) carry their prompts in content
// blocks and input items of their own. Both are rewritten here into the chat-shaped body that
// `promptTokenBound` and `countPromptTokens` read, so the gateway that prices a request and the
// buyer that checks the price walk the same blocks the same way.

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function invalid(field: string, problem: string): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_REQUEST_INVALID",
    shortMessage: `${field} ${problem}`,
    details: { field },
  });
}

/**
 * One Anthropic content block in the chat shape the prompt bound reads: images count as images
 * (also inside a tool result or a document of content blocks), an inline PDF as a document (a file's
 * data), a plain-text document as its text, everything else (text, tool use, thinking, search
 * results…) as every key and string it holds. A document by URL cannot be sized.
 */
function boundableBlock(block: unknown, path: string): unknown[] {
  if (!isObject(block)) return [block];
  const source = isObject(block.source) ? block.source : undefined;
  if (block.type === "image") {
    const { source: _source, ...rest } = block;
    return [
      { type: "image_url", image_url: "image" },
      { type: "text", text: JSON.stringify(rest) },
    ];
  }
  if (block.type === "document" && source) {
    if (source.type === "url" || source.type === "file")
      throw invalid(
        `${path}.source`,
        "a document by URL or file id cannot be priced before the request runs; send it as base64 or text",
      );
    // A document of content blocks holds images and text as a message does: each is bounded as its own.
    if (source.type === "content" && Array.isArray(source.content)) {
      const { source: _source, ...rest } = block;
      return [
        { type: "text", text: JSON.stringify({ ...rest, source: { ...source, content: [] } }) },
        ...source.content.flatMap((inner, index) =>
          boundableBlock(inner, `${path}.source.content[${index}]`),
        ),
      ];
    }
    if (typeof source.data === "string") {
      const { source: _source, ...rest } = block;
      return [
        // Plain text is read as text; a PDF's data is a document, which its bytes do not bound.
        source.type === "text"
          ? { type: "text", text: source.data }
          : { type: "file", file: { file_data: source.data } },
        { type: "text", text: JSON.stringify({ ...rest, source: { ...source, data: "" } }) },
      ];
    }
  }
  if (block.type === "tool_result" && Array.isArray(block.content)) {
    const { content, ...rest } = block;
    return [
      { type: "text", text: JSON.stringify(rest) },
      ...content.flatMap((inner, index) => boundableBlock(inner, `${path}.content[${index}]`)),
    ];
  }
  return [{ type: "text", text: JSON.stringify(block) }];
}

/**
 * A Messages API request (`system`, `messages` with content blocks of every type, `tools`,
 * `tool_choice`) as the chat-shaped body the prompt bound reads: system first, then every message.
 * Throws `TOLLGATE_REQUEST_INVALID`, naming the field, for what cannot be priced.
 * @example
 * await promptTokenBound({ kind: "chat", body: messagesPromptBody(body) })
 */
export function messagesPromptBody(fields: Record<string, unknown>): Record<string, unknown> {
  const { system, messages, tools, tool_choice } = fields;
  if (!Array.isArray(messages) || messages.length === 0)
    throw invalid("messages", "must be a non-empty array");
  const chat: unknown[] = [];
  if (typeof system === "string") chat.push({ role: "system", content: system });
  else if (Array.isArray(system))
    chat.push({
      role: "system",
      content: system.flatMap((block, index) => boundableBlock(block, `system[${index}]`)),
    });
  messages.forEach((message, index) => {
    if (!isObject(message)) throw invalid(`messages[${index}]`, "must be an object");
    const { content, ...rest } = message;
    chat.push({
      ...rest,
      content: Array.isArray(content)
        ? content.flatMap((block, part) => boundableBlock(block, `messages[${index}].content[${part}]`))
        : content,
    });
  });
  return { messages: chat, tools, tool_choice };
}

/** One Responses input content part in the chat shape the bound reads; a file or image by id cannot be sized. */
function boundablePart(part: unknown, path: string): unknown {
  if (!isObject(part)) return part;
  if (part.type === "input_image") {
    if (typeof part.image_url !== "string")
      throw invalid(
        `${path}.image_url`,
        "an image by file_id cannot be priced before the request runs; send image_url",
      );
    return { type: "image_url", image_url: { url: part.image_url } };
  }
  if (part.type === "input_file") {
    if (typeof part.file_data !== "string")
      throw invalid(`${path}.file_data`, "only inline file_data can be priced before the request runs");
    return { type: "file", file: { file_data: part.file_data, filename: part.filename } };
  }
  return { type: "text", text: JSON.stringify(part) };
}

/**
 * A Responses API request (`instructions`, `input` as a string or input items of every type,
 * `tools`, `tool_choice`, `text`) as the chat-shaped body the prompt bound reads: instructions,
 * then every input item. Throws `TOLLGATE_REQUEST_INVALID`, naming the field, for what cannot be priced.
 */
export function responsesPromptBody(fields: Record<string, unknown>): Record<string, unknown> {
  const { instructions, input, tools, tool_choice, text } = fields;
  if (typeof input !== "string" && !(Array.isArray(input) && input.length > 0))
    throw invalid("input", "must be a string or a non-empty array of input items");
  if (instructions !== undefined && instructions !== null && typeof instructions !== "string")
    throw invalid("instructions", "must be a string");
  const chat: unknown[] = [];
  if (typeof instructions === "string") chat.push({ role: "system", content: instructions });
  if (typeof input === "string") chat.push({ role: "user", content: input });
  else
    (input as unknown[]).forEach((item, index) => {
      if (!isObject(item)) throw invalid(`input[${index}]`, "must be an object");
      // A reference reads an item stored on the backend into the prompt, unseen here.
      if (item.type === "item_reference")
        throw invalid(
          `input[${index}].type`,
          "item_reference names an item stored on the backend, which cannot be priced before the request runs; send the item itself",
        );
      // A tool call's output may be parts too (text, images, files): each is read as a content part is.
      const { content, output, ...rest } = item;
      if (!Array.isArray(content) && !Array.isArray(output)) {
        chat.push(item);
        return;
      }
      const parts: unknown[] = [];
      for (const [field, value] of [
        ["content", content],
        ["output", output],
      ] as const) {
        if (Array.isArray(value))
          parts.push(...value.map((part, i) => boundablePart(part, `input[${index}].${field}[${i}]`)));
        else if (value !== undefined) parts.push({ type: "text", text: JSON.stringify(value) });
      }
      chat.push({ ...rest, content: parts });
    });
  return { messages: chat, tools, tool_choice, response_format: text };
}

/** Every string value inside `value` (not its keys): what a model reads of a tool call's input, whatever its rendering. */
function stringValues(value: unknown, out: string[], depth = 0): void {
  if (typeof value === "string") out.push(value);
  else if (depth < 64 && Array.isArray(value)) for (const item of value) stringValues(item, out, depth + 1);
  else if (depth < 64 && isObject(value))
    for (const item of Object.values(value)) stringValues(item, out, depth + 1);
}

/** Each tool's description: a model shown a tool reads it, however its template lays the tool out. */
function toolDescriptions(tools: unknown, out: string[]): void {
  if (!Array.isArray(tools)) return;
  for (const tool of tools)
    if (isObject(tool) && typeof tool.description === "string") out.push(tool.description);
}

/**
 * The text of Anthropic content (a string, or blocks): text blocks, plain-text documents, the values
 * of a tool call's input, and what tool results, search results and documents of blocks hold.
 */
function messagesContentTexts(content: unknown, out: string[]): void {
  if (typeof content === "string") out.push(content);
  if (!Array.isArray(content)) return;
  for (const block of content) {
    if (!isObject(block)) continue;
    if (block.type === "text" && typeof block.text === "string") out.push(block.text);
    if (block.type === "tool_use") stringValues(block.input, out);
    if (block.type === "tool_result" || block.type === "search_result")
      messagesContentTexts(block.content, out);
    const source = isObject(block.source) ? block.source : undefined;
    if (block.type === "document" && source?.type === "text" && typeof source.data === "string")
      out.push(source.data);
    if (block.type === "document" && source?.type === "content") messagesContentTexts(source.content, out);
  }
}

/**
 * The text of a Chat Completions request that any model must read, whatever its template: every text
 * of the messages (as `promptParts` takes them apart), and each tool's or function's description. Not
 * the tools' JSON schemas, which a backend renders its own way. For weighing a backend's count
 * (`promptCountPlausible`).
 */
export function chatPlainTexts(fields: Record<string, unknown>): string[] {
  const out = promptParts("chat", { messages: fields.messages }, { imageTokens: 0 }).texts;
  if (Array.isArray(fields.tools))
    for (const tool of fields.tools)
      if (isObject(tool) && isObject(tool.function) && typeof tool.function.description === "string")
        out.push(tool.function.description);
  toolDescriptions(fields.functions, out);
  return out;
}

/**
 * The text of a Messages API request that any model must read, whatever its template: the tools'
 * descriptions, the system prompt, and the text of every message, tool call's input, tool and search result and text document. Not the blocks' JSON (keys,
 * ids, thinking signatures), which the prompt bound counts and a backend may not. For weighing a
 * backend's count (`promptCountPlausible`).
 */
export function messagesPlainTexts(fields: Record<string, unknown>): string[] {
  const out: string[] = [];
  toolDescriptions(fields.tools, out);
  messagesContentTexts(fields.system, out);
  if (Array.isArray(fields.messages))
    for (const message of fields.messages) if (isObject(message)) messagesContentTexts(message.content, out);
  return out;
}

/**
 * The text of a Responses API request that any model must read: the tools' descriptions, the
 * instructions, a string input,
 * and the text of every input item's content, tool call's arguments or input, and tool output. Not the items' JSON (keys, ids). For
 * weighing a backend's count (`promptCountPlausible`).
 */
export function responsesPlainTexts(fields: Record<string, unknown>): string[] {
  const out: string[] = [];
  toolDescriptions(fields.tools, out);
  if (typeof fields.instructions === "string") out.push(fields.instructions);
  if (typeof fields.input === "string") out.push(fields.input);
  if (Array.isArray(fields.input))
    for (const item of fields.input) {
      if (!isObject(item)) continue;
      // A function call's arguments and a custom tool call's input: the model reads them as they are.
      for (const value of [item.arguments, item.input]) if (typeof value === "string") out.push(value);
      for (const value of [item.content, item.output]) {
        if (typeof value === "string") out.push(value);
        if (Array.isArray(value))
          for (const part of value) if (isObject(part) && typeof part.text === "string") out.push(part.text);
      }
    }
  return out;
}

/** The documents of a rerank request, as texts: strings, or `{ text }` objects (Jina's and Cohere's shapes). */
function rerankDocuments(documents: unknown): string[] {
  if (!Array.isArray(documents) || documents.length === 0)
    throw invalid("documents", "must be a non-empty array of strings or { text } objects");
  return documents.map((document, index) => {
    if (typeof document === "string") return document;
    if (isObject(document) && typeof document.text === "string" && Object.keys(document).length === 1)
      return document.text;
    throw invalid(
      `documents[${index}]`,
      "must be a string or { text: string }: a document of other fields cannot be priced before the request runs",
    );
  });
}

/**
 * A rerank request (`query`, `documents`: Jina's, Cohere's and vLLM's `/rerank`) as the embeddings
 * input the prompt bound reads: the query beside each document, one pair per document, as a
 * cross-encoder reads them, so the query counts once per document. Throws `TOLLGATE_REQUEST_INVALID`,
 * naming the field, for a query or documents it cannot price.
 */
export function rerankPromptBody(fields: Record<string, unknown>): Record<string, unknown> {
  const { query } = fields;
  if (typeof query !== "string" || query.length === 0) throw invalid("query", "must be a non-empty string");
  return { input: rerankDocuments(fields.documents).flatMap((document) => [query, document]) };
}

/**
 * The text of a rerank request that any model must read: the query and each document, once. For
 * weighing a backend's count (`promptCountPlausible`): a backend may read the query once.
 */
export function rerankPlainTexts(fields: Record<string, unknown>): string[] {
  return [String(fields.query ?? ""), ...rerankDocuments(fields.documents)];
}
