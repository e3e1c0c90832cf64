import { responsesPlainTexts, responsesPromptBody } from "../../pricing/index.js";
import { RECEIPT_FIELD, type StreamReceipt } from "../../protocol/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import { type AnswerMeter, cutBlocks, cutText } from "../truncateAnswer.js";
import type { OutputReading, RouteAdapter, RouteRequest } from "./RouteAdapter.js";
import { errorOf } from "./readChoices.js";
import {
  invalidField,
  pickAllowedFields,
  readNumbers,
  readStream,
  refuseUndeclaredTools,
} from "./requestFields.js";

// The OpenAI Responses API: https://platform.openai.com/docs/api-reference/responses and its
// streaming events (response.created … response.output_text.delta … response.completed).

const ALLOWED = new Set([
  "model",
  "input",
  "instructions",
  "max_output_tokens",
  "stream",
  "temperature",
  "top_p",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "text",
  "reasoning",
  "truncation",
  "user",
]);
/** Accepted and not forwarded: they change nothing the backend bills. */
const IGNORED = new Set(["store", "metadata", "service_tier", "safety_identifier", "prompt_cache_key"]);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The request as the chat-shaped body the pricing bounds and counts. */
const promptBody = (request: RouteRequest) => responsesPromptBody(request.fields);

/** Responses usage in chat's names, cached and reasoning details included. */
function normalizedUsage(usage: unknown): Record<string, unknown> | undefined {
  if (!isObject(usage)) return undefined;
  const inputDetails = isObject(usage.input_tokens_details) ? usage.input_tokens_details : {};
  const outputDetails = isObject(usage.output_tokens_details) ? usage.output_tokens_details : {};
  return {
    prompt_tokens: usage.input_tokens,
    completion_tokens: usage.output_tokens,
    prompt_tokens_details: { cached_tokens: inputDetails.cached_tokens },
    completion_tokens_details: { reasoning_tokens: outputDetails.reasoning_tokens },
  };
}

/** Output items whose generated text this route reads by field; the text of any other item is every string in it. */
const READ_ITEMS = new Set([
  "message",
  "reasoning",
  "function_call",
  "custom_tool_call",
  "code_interpreter_call",
]);

/**
 * Text the model generated in the output items of a response: messages, refusals, tool calls, reasoning
 * summaries, and every string but short labels of an item of a type this gateway does not know.
 */
function outputText(output: unknown): string {
  if (!Array.isArray(output)) return "";
  let text = "";
  for (const item of output) {
    if (!isObject(item)) continue;
    if (typeof item.type !== "string" || !READ_ITEMS.has(item.type)) {
      text += stringsOf(item);
      continue;
    }
    for (const key of ["arguments", "name", "input", "code"] as const)
      if (typeof item[key] === "string") text += item[key];
    for (const list of [item.content, item.summary])
      if (Array.isArray(list))
        for (const part of list)
          if (isObject(part))
            for (const key of ["text", "refusal"] as const)
              if (typeof part[key] === "string") text += part[key];
  }
  return text;
}

const DELTA_EVENTS = new Set([
  "response.output_text.delta",
  "response.refusal.delta",
  "response.function_call_arguments.delta",
  "response.reasoning_text.delta",
  "response.reasoning_summary_text.delta",
  "response.custom_tool_call_input.delta",
  "response.code_interpreter_call_code.delta",
]);

/** Deltas of the model's reasoning shown as it thinks, not of its answer. */
const REASONING_DELTAS = new Set(["response.reasoning_text.delta", "response.reasoning_summary_text.delta"]);

function readEvent(json: unknown): OutputReading {
  if (!isObject(json)) return { pieces: [], delivered: false, usage: undefined, error: "not a JSON object" };
  const type = typeof json.type === "string" ? json.type : "";
  if (type === "error" || type === "response.failed") {
    const failed = isObject(json.response) ? (json.response.error as { message?: unknown } | null) : null;
    const message = typeof json.message === "string" ? json.message : failed?.message;
    return {
      pieces: [],
      delivered: false,
      usage: undefined,
      error: typeof message === "string" ? message : "the backend reported an error",
    };
  }
  if (DELTA_EVENTS.has(type)) {
    // A delta is a string; any other shape is read for every string in it, which the buyer gets as well.
    const text = stringsOf(json.delta);
    return {
      pieces: text ? [{ choice: 0, text }] : [],
      delivered: true,
      usage: undefined,
      error: undefined,
      ...(REASONING_DELTAS.has(type) ? { reasoning: true } : {}),
      // A summary of the reasoning is not the reasoning the usage itemizes.
      ...(type === "response.reasoning_text.delta" && text ? { reasoningInFull: [{ choice: 0, text }] } : {}),
    };
  }
  if (type === "response.completed" || type === "response.incomplete") {
    const response = isObject(json.response) ? json.response : {};
    return { pieces: [], delivered: true, usage: normalizedUsage(response.usage), error: undefined };
  }
  // Lifecycle events (created, in_progress, output_item.added, *.done, …): forwarded, nothing billed.
  return {
    pieces: [],
    delivered: false,
    usage: undefined,
    error: undefined,
    forward: type.startsWith("response."),
  };
}

/** Keys of an event or item that name or describe it rather than carry what the model generated. */
const LABEL_KEYS = new Set([
  "type",
  "id",
  "item_id",
  "call_id",
  "status",
  "role",
  "object",
  "model",
  "name",
  "phase",
  "created_at",
  "sequence_number",
  "output_index",
  "content_index",
  "summary_index",
]);

/** Longest label an honest server sends (a function name is at most 64 characters); a longer one is counted. */
const LABEL_MAX_CHARS = 64;

/** Every string in `value` but short labels: what a buyer could read of an event this gateway does not know. */
function stringsOf(value: unknown, depth = 0): string {
  if (typeof value === "string") return value;
  if (depth > 16 || typeof value !== "object" || value === null) return "";
  let text = "";
  if (Array.isArray(value)) for (const item of value) text += stringsOf(item, depth + 1);
  else
    for (const [key, item] of Object.entries(value))
      if (!LABEL_KEYS.has(key) || (typeof item === "string" && item.length > LABEL_MAX_CHARS))
        text += stringsOf(item, depth + 1);
  return text;
}

/** An output item without its name: a name is not sent as a delta, so it is not counted against them. */
const unnamed = (item: unknown) => (isObject(item) ? { ...item, name: undefined } : item);

/**
 * Text an event other than a delta carries in the fields deltas fill: a `*.done` event's text, an
 * item's or a part's, a whole response's output (the rest of a response echoes the request). Labels,
 * annotations and other fields no delta fills are not counted. Of an event this gateway does not
 * know, every string but short labels.
 */
function carriedText(json: Record<string, unknown>, known: boolean): string {
  if (!known) return isObject(json.response) ? stringsOf(json.response.output) : stringsOf(json);
  let text = "";
  for (const key of ["text", "refusal", "arguments", "input", "code"] as const)
    if (typeof json[key] === "string") text += json[key];
  if (isObject(json.item)) text += outputText([unnamed(json.item)]);
  if (isObject(json.part)) text += outputText([{ content: [json.part] }]);
  if (isObject(json.response) && Array.isArray(json.response.output))
    text += outputText(json.response.output.map(unnamed));
  return text;
}

/** The events of the Responses stream that repeat delta text or carry none; any other is read as one kind. */
const LIFECYCLE_EVENTS = new Set([
  "response.created",
  "response.in_progress",
  "response.queued",
  "response.completed",
  "response.incomplete",
  "response.output_item.added",
  "response.output_item.done",
  "response.content_part.added",
  "response.content_part.done",
  "response.output_text.done",
  "response.output_text.annotation.added",
  "response.refusal.done",
  "response.function_call_arguments.done",
  "response.reasoning_text.done",
  "response.reasoning_summary_part.added",
  "response.reasoning_summary_part.done",
  "response.reasoning_summary_text.done",
  "response.custom_tool_call_input.done",
  "response.code_interpreter_call_code.done",
]);

/**
 * Text each kind of event of a stream that sent deltas may carry beyond what they delivered: a
 * server's small slips (a first argument chunk sent in `output_item.added`, not as a delta) pass unmetered.
 */
const REPEAT_SLACK_CHARS = 128;

/**
 * Reads one stream's events. A real server sends output as deltas and repeats it in `*.done`,
 * `output_item.*`, `content_part.*` and `response.completed` events; a backend that sends text only
 * in those would deliver it unmetered and past the output limit. So the text each kind of event
 * carries, summed over the stream, may exceed what was delivered by a small slack only (none for a
 * stream without deltas); beyond it, the text is metered as output like a delta's, and cut at the
 * limit. Metered text counts as delivered, so no other kind repeating it is metered for it again.
 */
function responsesStreamReader(): (json: unknown) => OutputReading {
  let deliveredChars = 0;
  const carriedByKind = new Map<string, number>();
  return (json) => {
    const reading = readEvent(json);
    if (!isObject(json) || reading.error !== undefined || reading.forward === false) return reading;
    const type = String(json.type);
    if (DELTA_EVENTS.has(type)) {
      for (const piece of reading.pieces) deliveredChars += piece.text.length;
      return reading;
    }
    const known = LIFECYCLE_EVENTS.has(type);
    const text = carriedText(json, known);
    if (text === "") return reading;
    const kind = known ? type : "other";
    const carried = (carriedByKind.get(kind) ?? 0) + text.length;
    carriedByKind.set(kind, carried);
    const allowed = deliveredChars + (deliveredChars > 0 ? REPEAT_SLACK_CHARS : 0);
    const beyond = Math.min(text.length, carried - allowed);
    if (beyond <= 0) return reading;
    const excess = text.slice(text.length - beyond);
    deliveredChars += excess.length;
    return {
      ...reading,
      pieces: [...reading.pieces, { choice: 0, text: excess }],
      delivered: true,
      forward: true,
    };
  };
}

/** A message item whose text parts are cut to `maxTokens` in all; undefined for any other item (a tool call). */
function cutMessageItem(item: unknown, maxTokens: number, meter: AnswerMeter): unknown {
  if (!isObject(item) || item.type !== "message" || !Array.isArray(item.content)) return undefined;
  const budget: AnswerMeter = { allowancePerChoice: maxTokens, tokensOf: (text) => meter.tokensOf(text) };
  const { blocks } = cutBlocks<unknown>(item.content, budget, {
    textOf: (part) => outputText([{ content: [part] }]),
    // A cut part's logprobs would show the tokens cut off: they go with them.
    cut: (part, partTokens) =>
      isObject(part) && typeof part.text === "string"
        ? {
            ...part,
            text: cutText(part.text, partTokens, meter),
            ...("logprobs" in part ? { logprobs: [] } : {}),
          }
        : undefined,
  });
  return { ...item, status: "incomplete", content: blocks };
}

function readResponse(json: unknown): OutputReading {
  const error = errorOf(json);
  if (!isObject(json) || error !== undefined || json.object !== "response" || !Array.isArray(json.output))
    return {
      pieces: [],
      delivered: false,
      usage: undefined,
      error: error ?? "the backend answered no response",
    };
  const text = outputText(json.output);
  // A reasoning item's content is the reasoning in full; its summary is not.
  const reasoning = json.output
    .filter((item) => isObject(item) && item.type === "reasoning")
    .map((item) => outputText([{ ...item, summary: undefined }]))
    .join("");
  return {
    pieces: text ? [{ choice: 0, text }] : [],
    delivered: true,
    usage: normalizedUsage(json.usage),
    error: undefined,
    ...(reasoning ? { reasoningInFull: [{ choice: 0, text: reasoning }] } : {}),
  };
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/**
 * `POST /v1/responses`, the OpenAI Responses API: output limit `max_output_tokens`, usage from
 * `response.completed`, the receipt as a named `x402_receipt` event after it (the `openai`
 * client yields events it does not know as they are). Server-side state (`previous_response_id`,
 * `conversation`, stored prompts) is refused: what it adds to the prompt cannot be priced here.
 */
export const openAiResponses: RouteAdapter = {
  kind: "responses",
  path: "/responses",
  canStream: true,
  outputTokens: true,
  forwardedFields: ALLOWED,
  promptField: "input",
  chunkObject: "response",
  emptyChunkChoice: {},
  namedEvents: true,

  streamTrailer: {
    receipt: (receipt: StreamReceipt) =>
      sse(RECEIPT_FIELD, { type: RECEIPT_FIELD, [RECEIPT_FIELD]: receipt }),
    error: (message, code) => sse("error", { type: "error", code, message, param: null }),
    done: "",
  },

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/responses");
    readNumbers(fields, ["temperature", "top_p"]);
    if (typeof fields.input !== "string" && !(Array.isArray(fields.input) && fields.input.length > 0))
      throw invalidField("input", "must be a string or a non-empty array of input items");
    // Tools the provider runs or defines (web and file search, code interpreter, image generation, MCP,
    // computer use, shell) are refused.
    refuseUndeclaredTools(fields.tools, ["function", "custom"], "a function or custom tool");
    const stream = readStream(fields.stream);
    return {
      fields,
      stream,
      includeUsage: false,
      requestedOutputTokens: fields.max_output_tokens,
      choices: 1,
      ...(fields.truncation === "auto" ? { promptMayShrink: true } : {}),
    };
  },

  prompt(request) {
    return { kind: "chat", body: promptBody(request) };
  },

  plainTexts(request) {
    return responsesPlainTexts(request.fields);
  },

  backendBody(request: RouteRequest, model: ModelConfig, outputLimit: number) {
    const body: Record<string, unknown> = {
      ...request.fields,
      model: model.backend.model ?? model.id,
      max_output_tokens: outputLimit,
      // Nothing is kept on the backend for a later request to use unpaid.
      store: false,
    };
    for (const field of model.backend.outputLimitFields) body[field] = outputLimit;
    body.stream = request.stream;
    return body;
  },

  readChunk: readEvent,
  streamReader: responsesStreamReader,
  reportsReasoning: true,
  readAnswer: readResponse,

  cutAnswer(answer, _choices, meter) {
    if (!Array.isArray(answer.output)) return undefined;
    const { blocks, cut } = cutBlocks<unknown>(answer.output, meter, {
      textOf: (item) => outputText([item]),
      cut: (item, maxTokens) => cutMessageItem(item, maxTokens, meter),
    });
    if (!cut) return answer;
    return {
      ...answer,
      output: blocks,
      status: "incomplete",
      incomplete_details: { reason: "max_output_tokens" },
    };
  },
};
