import { messagesPlainTexts, messagesPromptBody, promptCacheControls } from "../../pricing/index.js";
import { RECEIPT_FIELD, type StreamReceipt } from "../../protocol/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import { CACHE_WRITE_TOKENS } from "../meterUsage.js";
import { cutBlocks, cutText } from "../truncateAnswer.js";
import type { OutputReading, RouteAdapter, RouteRequest } from "./RouteAdapter.js";
import {
  invalidField,
  pickAllowedFields,
  readNumbers,
  readStream,
  refuseUndeclaredTools,
} from "./requestFields.js";

// The Anthropic Messages API: https://docs.anthropic.com/en/api/messages and its streaming events
// (message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error).

const ALLOWED = new Set([
  "model",
  "messages",
  "system",
  "max_tokens",
  "stop_sequences",
  "stream",
  "temperature",
  "top_k",
  "top_p",
  "tools",
  "tool_choice",
  "thinking",
  "cache_control",
  "output_config",
]);
/** Accepted and not forwarded: they change nothing the backend bills. */
const IGNORED = new Set(["metadata", "service_tier"]);
const ANTHROPIC_VERSION = "2023-06-01";

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/** The request as the chat-shaped body the pricing bounds and counts. */
const promptBody = (request: RouteRequest) => messagesPromptBody(request.fields);

/**
 * Anthropic's usage in OpenAI's names: cache reads and writes are prompt tokens; reads are cached ones
 * (`cached_tokens`), writes their own (`CACHE_WRITE_TOKENS`, priced as `cache_write_input_tokens`).
 * `message_start` states the prompt; a later event (`message_delta`, `partial`) restates it only
 * when it states all three of its parts, so one that carries `input_tokens` alone cannot drop the
 * cache reads and writes `message_start` reported. A stated part that is not a count (negative,
 * fractional, a string) leaves the prompt uncounted (`prompt_tokens: null`): the gateway counts it.
 */
function normalizedUsage(
  usage: unknown,
  { output = true, partial = false }: { output?: boolean; partial?: boolean } = {},
): Record<string, unknown> | undefined {
  if (!isObject(usage)) return undefined;
  const count = (value: unknown) => (typeof value === "number" ? value : 0);
  const out: Record<string, unknown> = {};
  const statesPrompt = partial
    ? [usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens].every(
        (part) => typeof part === "number",
      )
    : usage.input_tokens !== undefined && usage.input_tokens !== null;
  const parts = [usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens];
  // A part that is no count (negative, fractional, a string) makes the sum no count of the prompt
  // either: one part cannot lower another's (a write of -150 taken off the input), nor go uncounted.
  if (statesPrompt && !parts.every((part) => part === undefined || part === null || isCount(part)))
    out.prompt_tokens = null;
  else if (statesPrompt) {
    out.prompt_tokens =
      count(usage.input_tokens) +
      count(usage.cache_read_input_tokens) +
      count(usage.cache_creation_input_tokens);
    out.prompt_tokens_details = { cached_tokens: count(usage.cache_read_input_tokens) };
    (out as { [CACHE_WRITE_TOKENS]?: number })[CACHE_WRITE_TOKENS] = count(usage.cache_creation_input_tokens);
  }
  if (output && usage.output_tokens !== undefined && usage.output_tokens !== null)
    out.completion_tokens = usage.output_tokens;
  return out;
}

/**
 * The output a request lets the model think without showing it. With extended thinking on, Claude 4
 * models stream a summary of their thinking and bill all of it as output: at most `budget_tokens` when
 * `enabled`, at most the output limit when `adaptive` (the model chooses); none when `disabled`.
 * Undefined when the request has no `thinking`: a model that thinks by default shows a thinking block.
 */
function hiddenThinkingTokens(thinking: unknown, maxTokens: unknown): number | undefined {
  if (thinking === undefined || thinking === null) return undefined;
  const shapes = `"enabled" with budget_tokens, "adaptive" or "disabled"`;
  if (!isObject(thinking)) throw invalidField("thinking", `must be an object: {"type": ${shapes}}`);
  switch (thinking.type) {
    case "disabled":
      return 0;
    case "adaptive":
      // A max_tokens too large to be exact (1e20) is still a limit: the model's, which the charge never passes.
      return typeof maxTokens === "number" && Number.isSafeInteger(maxTokens)
        ? maxTokens
        : Number.MAX_SAFE_INTEGER;
    case "enabled": {
      const budget = thinking.budget_tokens;
      if (typeof budget !== "number" || !Number.isSafeInteger(budget) || budget < 1)
        throw invalidField(
          "thinking.budget_tokens",
          "must be a positive integer: the most tokens the model may think",
        );
      return budget;
    }
    default:
      // Thinking this gateway cannot bound would be output it cannot charge for.
      throw invalidField("thinking.type", `is ${JSON.stringify(thinking.type)}: it must be ${shapes}`);
  }
}

function errorMessageOf(json: Record<string, unknown>): string | undefined {
  if (json.type !== "error" && json.error === undefined) return undefined;
  const error = json.error;
  if (isObject(error) && typeof error.message === "string") return error.message;
  return typeof error === "string" ? error : "the backend reported an error";
}

/**
 * Keys of a block or delta that hold no text the model generated: labels, a thinking block's signature,
 * a redacted thinking block's `data` (encrypted: its tokens are in the backend's count, believed as
 * hidden output, `isThinkingBlock`), and citations (Anthropic bills neither a `citations_delta`'s
 * `cited_text` nor the rest of it as output). A tool's `input` is read apart, as the JSON it is.
 */
const NOT_GENERATED = new Set([
  "type",
  "id",
  "tool_use_id",
  "signature",
  "data",
  "citation",
  "citations",
  "input",
]);

/** Every string in `value` but under the keys of `NOT_GENERATED`. */
function stringsIn(value: unknown, depth = 0): string {
  if (typeof value === "string") return value;
  if (depth > 16 || typeof value !== "object" || value === null) return "";
  let text = "";
  if (Array.isArray(value)) for (const item of value) text += stringsIn(item, depth + 1);
  else
    for (const [key, item] of Object.entries(value))
      if (!NOT_GENERATED.has(key)) text += stringsIn(item, depth + 1);
  return text;
}

/**
 * Text the model generated in one block or delta: text, thinking, a tool's name and input, and any
 * other string a block or delta of a shape this gateway does not know carries, which a buyer reads
 * as well (see `NOT_GENERATED` for what is not counted).
 */
function generatedText(block: unknown): string {
  if (!isObject(block)) return "";
  let text = stringsIn(block);
  if (block.input !== undefined && !(isObject(block.input) && Object.keys(block.input).length === 0))
    text += JSON.stringify(block.input);
  return text;
}

/** Keys of an event or a message that label it: short strings under them are not generated text. */
const EVENT_LABELS = new Set(["type", "id", "role", "model", "stop_reason"]);

/** Longest label an honest backend sends (a model's id, a message id); a longer one is counted. */
const LABEL_MAX_CHARS = 64;

/**
 * Strings an event or a message carries beyond its content blocks (`skip`) and usage, which a client reads
 * as well: a stop sequence met (the model generated it; its text is not in the content), and any text a
 * backend puts where Anthropic puts none. Labels (`EVENT_LABELS`) are not counted.
 */
function carriedText(value: Record<string, unknown>, skip: readonly string[] = []): string {
  let text = "";
  for (const [key, item] of Object.entries(value)) {
    if (key === "usage" || skip.includes(key)) continue;
    if (EVENT_LABELS.has(key) && typeof item === "string" && item.length <= LABEL_MAX_CHARS) continue;
    text += stringsIn(item);
  }
  return text;
}

/** A reading of an event whose only output is the text it carries outside content blocks. */
function carried(text: string, usage: Record<string, unknown> | undefined): OutputReading {
  return { pieces: text ? [{ choice: 0, text }] : [], delivered: true, usage, error: undefined };
}

/** A content block of thinking, shown as a summary, redacted, or omitted: the model billed more than it shows. */
const isThinkingBlock = (block: unknown) =>
  isObject(block) && (block.type === "thinking" || block.type === "redacted_thinking");

/** A delta of a thinking block: its summarized text, or its signature. */
const isThinkingDelta = (delta: unknown) =>
  isObject(delta) && (delta.type === "thinking_delta" || delta.type === "signature_delta");

function readEvent(json: unknown): OutputReading {
  if (!isObject(json)) return { pieces: [], delivered: false, usage: undefined, error: "not a JSON object" };
  const error = errorMessageOf(json);
  if (error !== undefined) return { pieces: [], delivered: false, usage: undefined, error };
  switch (json.type) {
    case "message_start": {
      // Its content is empty from Anthropic; any text a backend puts there is output, and metered.
      const message = isObject(json.message) ? json.message : {};
      const content = message.content;
      const text =
        carriedText(json, ["message"]) +
        carriedText(message, ["content"]) +
        (Array.isArray(content) ? content.map(generatedText).join("") : "");
      return {
        pieces: text ? [{ choice: 0, text }] : [],
        delivered: text !== "",
        // Its output_tokens is a placeholder; the count comes with message_delta.
        usage: normalizedUsage((json.message as { usage?: unknown } | undefined)?.usage, { output: false }),
        error: undefined,
        forward: true,
      };
    }
    case "content_block_start":
    case "content_block_delta": {
      const block = json.type === "content_block_start" ? json.content_block : json.delta;
      const text = generatedText(block);
      return {
        pieces: text ? [{ choice: 0, text }] : [],
        delivered: true,
        usage: undefined,
        error: undefined,
        ...(json.type === "content_block_start" && isThinkingBlock(block) ? { hiddenOutput: true } : {}),
        ...(isThinkingBlock(block) || isThinkingDelta(block) ? { reasoning: true } : {}),
      };
    }
    case "content_block_stop":
    case "message_stop":
      return carried(carriedText(json), undefined);
    case "message_delta": {
      const delta = isObject(json.delta) ? carriedText(json.delta) : stringsIn(json.delta);
      return carried(carriedText(json, ["delta"]) + delta, normalizedUsage(json.usage, { partial: true }));
    }
    default:
      // ping and events this gateway does not know: not forwarded, nothing billed.
      return { pieces: [], delivered: false, usage: undefined, error: undefined, forward: false };
  }
}

function readMessage(json: unknown): OutputReading {
  if (!isObject(json)) return { pieces: [], delivered: false, usage: undefined, error: "not a JSON object" };
  const error = errorMessageOf(json);
  const content = Array.isArray(json.content) ? json.content : undefined;
  if (error !== undefined || json.type !== "message" || content === undefined)
    return {
      pieces: [],
      delivered: false,
      usage: undefined,
      error: error ?? "the backend answered no message",
    };
  const text = content.map(generatedText).join("") + carriedText(json, ["content"]);
  return {
    pieces: text ? [{ choice: 0, text }] : [],
    delivered: true,
    usage: normalizedUsage(json.usage),
    error: undefined,
    ...(content.some(isThinkingBlock) ? { hiddenOutput: true } : {}),
  };
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/** Anthropic's error `type` for an HTTP status. */
function errorTypeOf(status: number): string {
  if (status === 400 || status === 413) return status === 413 ? "request_too_large" : "invalid_request_error";
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503 || status === 529) return "overloaded_error";
  return "api_error";
}

/**
 * `POST /v1/messages`, the Anthropic Messages API: output limit `max_tokens`, usage from
 * `message_start` and `message_delta`, the receipt as a named `x402_receipt` event after
 * `message_stop` (Anthropic's SDKs pass events they do not know through, or skip them).
 */
export const anthropicMessages: RouteAdapter = {
  kind: "messages",
  path: "/messages",
  canStream: true,
  outputTokens: true,
  forwardedFields: ALLOWED,
  promptField: "messages",
  chunkObject: "message",
  emptyChunkChoice: {},
  namedEvents: true,

  streamTrailer: {
    receipt: (receipt: StreamReceipt) =>
      sse(RECEIPT_FIELD, { type: RECEIPT_FIELD, [RECEIPT_FIELD]: receipt }),
    error: (message, code) => sse("error", { type: "error", error: { type: "api_error", message, code } }),
    done: "",
  },

  backendHeaders(apiKey) {
    return { "anthropic-version": ANTHROPIC_VERSION, ...(apiKey ? { "x-api-key": apiKey } : {}) };
  },

  errorBody(status, message, code) {
    return { type: "error", error: { type: errorTypeOf(status), message, code } };
  },

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/messages");
    readNumbers(fields, ["temperature", "top_k", "top_p"]);
    if (!Array.isArray(fields.messages) || fields.messages.length === 0)
      throw invalidField("messages", "must be a non-empty array");
    if (fields.system !== undefined && typeof fields.system !== "string" && !Array.isArray(fields.system))
      throw invalidField("system", "must be a string or an array of text blocks");
    if (typeof fields.max_tokens !== "number")
      throw invalidField(
        "max_tokens",
        "is required, a positive integer: the most output tokens this request may generate",
      );
    // Anthropic's own tools (web search and fetch, code execution, and the client tools it defines,
    // whose system prompt it adds) are refused: custom tools only.
    refuseUndeclaredTools(fields.tools, ["custom"], "a custom tool (no type, with input_schema)");
    // A one-hour cache write costs the backend twice an input token; only the 5-minute write has a price here.
    const cacheControls = promptCacheControls(fields);
    for (const { path, control } of cacheControls)
      if (control.ttl !== undefined && control.ttl !== "5m")
        throw invalidField(
          path ? `${path}.cache_control` : "cache_control",
          `has ttl ${JSON.stringify(control.ttl)}, which is not sold here: only 5-minute prompt-cache writes are priced (leave ttl out, or "5m")`,
        );
    // How hard the model works (`effort`) stays within max_tokens; an output format adds a prompt not metered here.
    if (fields.output_config !== undefined) {
      const config = fields.output_config;
      if (!isObject(config) || Object.keys(config).some((key) => key !== "effort"))
        throw invalidField("output_config", "may hold only effort here (an output format is not sold)");
      if (typeof config.effort !== "string") throw invalidField("output_config.effort", "must be a string");
    }
    const hiddenOutputTokens = hiddenThinkingTokens(fields.thinking, fields.max_tokens);
    const stream = readStream(fields.stream);
    return {
      fields,
      stream,
      includeUsage: false,
      requestedOutputTokens: fields.max_tokens,
      choices: 1,
      promptCache: cacheControls.length > 0,
      ...(hiddenOutputTokens !== undefined ? { hiddenOutputTokens } : {}),
    };
  },

  prompt(request) {
    return { kind: "chat", body: promptBody(request) };
  },

  plainTexts(request) {
    return messagesPlainTexts(request.fields);
  },

  backendBody(request: RouteRequest, model: ModelConfig, outputLimit: number) {
    // The budget is part of max_tokens, which the backend gets as the authorized limit.
    const thinking = request.fields.thinking as { type?: unknown; budget_tokens?: unknown } | undefined;
    const budget = thinking?.type === "enabled" ? thinking.budget_tokens : undefined;
    if (typeof budget === "number" && budget >= outputLimit)
      throw invalidField(
        "thinking.budget_tokens",
        `is ${budget}, not below the output limit ${outputLimit} this model is sold with: ask for a smaller budget`,
      );
    const body: Record<string, unknown> = {
      ...request.fields,
      model: model.backend.model ?? model.id,
      max_tokens: outputLimit,
    };
    for (const field of model.backend.outputLimitFields) body[field] = outputLimit;
    body.stream = request.stream;
    return body;
  },

  readChunk: readEvent,
  readAnswer: readMessage,

  cutAnswer(answer, _choices, meter) {
    if (!Array.isArray(answer.content)) return undefined;
    const { blocks, cut } = cutBlocks<unknown>(answer.content, meter, {
      textOf: generatedText,
      // Only text can be cut; a tool call or thinking block cut short would be a different block.
      cut: (block, maxTokens) =>
        isObject(block) && block.type === "text" && typeof block.text === "string"
          ? { ...block, text: cutText(block.text, maxTokens, meter) }
          : undefined,
    });
    return cut ? { ...answer, content: blocks, stop_reason: "max_tokens", stop_sequence: null } : answer;
  },

  // As in a whole answer, only text is cut: thinking cut short would no longer match its signature.
  cutChunk(chunk, roomFor, meter) {
    const delta = chunk.delta;
    if (chunk.type !== "content_block_delta" || !isObject(delta)) return undefined;
    if (delta.type !== "text_delta" || typeof delta.text !== "string") return undefined;
    return { ...chunk, delta: { ...delta, text: cutText(delta.text, roomFor(0), meter) } };
  },
};
