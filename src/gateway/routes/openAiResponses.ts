import { countPromptTokens, promptTokenBound, responsesPromptBody } from "../../pricing/index.js";
import { RECEIPT_FIELD, type StreamReceipt } from "../../protocol/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import { type AnswerMeter, cutBlocks, cutText } from "../truncateAnswer.js";
import type { OutputReading, RouteAdapter, RouteRequest } from "./RouteAdapter.js";
import { errorOf } from "./readChoices.js";
import {
  invalidField,
  pickAllowedFields,
  pricingOf,
  readNumbers,
  readStream,
  refuseHostedTools,
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

/** Text the model generated in the output items of a response: messages, refusals, tool calls, reasoning summaries. */
function outputText(output: unknown): string {
  if (!Array.isArray(output)) return "";
  let text = "";
  for (const item of output) {
    if (!isObject(item)) continue;
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
    const text = typeof json.delta === "string" ? json.delta : "";
    return { pieces: text ? [{ choice: 0, text }] : [], delivered: true, usage: undefined, error: undefined };
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

/** Output text an event other than a delta carries (a `*.done` event's text, an item, a part, a whole response). */
function carriedText(json: Record<string, unknown>): string {
  let text = "";
  for (const key of ["text", "refusal", "arguments", "input", "code"] as const)
    if (typeof json[key] === "string") text += json[key];
  // Names are not sent as deltas: they are not counted here, as in no delta.
  const unnamed = (item: unknown) => (isObject(item) ? { ...item, name: undefined } : item);
  if (isObject(json.item)) text += outputText([unnamed(json.item)]);
  if (isObject(json.part)) text += outputText([{ content: [json.part] }]);
  if (isObject(json.response) && Array.isArray(json.response.output))
    text += outputText(json.response.output.map(unnamed));
  return text;
}

/**
 * Reads one stream's events. A real server sends output as deltas and repeats it in the `*.done`,
 * `output_item.done` and `response.completed` events; a backend that sends text only in those would
 * deliver it unmetered and past the output limit. So an event may carry no more text than the deltas
 * of its output item delivered (of all items, for a whole response); one that does ends the stream.
 */
function responsesStreamReader(): (json: unknown) => OutputReading {
  const deliveredChars = new Map<number, number>();
  let totalChars = 0;
  const indexOf = (json: Record<string, unknown>) =>
    typeof json.output_index === "number" ? json.output_index : -1;
  return (json) => {
    const reading = readEvent(json);
    if (!isObject(json) || reading.error !== undefined) return reading;
    if (DELTA_EVENTS.has(String(json.type))) {
      const chars = reading.pieces.reduce((sum, piece) => sum + piece.text.length, 0);
      deliveredChars.set(indexOf(json), (deliveredChars.get(indexOf(json)) ?? 0) + chars);
      totalChars += chars;
      return reading;
    }
    const carried = carriedText(json).length;
    if (carried === 0) return reading;
    const index = indexOf(json);
    const allowed =
      index === -1 || isObject(json.response)
        ? totalChars
        : (deliveredChars.get(index) ?? 0) + (deliveredChars.get(-1) ?? 0);
    if (carried <= allowed) return reading;
    return {
      pieces: [],
      delivered: false,
      usage: undefined,
      error: `the backend sent output outside its delta events (${carried} characters in ${String(json.type)}, ${allowed} delivered)`,
    };
  };
}

/** A message item whose text parts are cut to `maxTokens` in all; undefined for any other item (a tool call). */
function cutMessageItem(item: unknown, maxTokens: number, meter: AnswerMeter): unknown {
  if (!isObject(item) || item.type !== "message" || !Array.isArray(item.content)) return undefined;
  const budget: AnswerMeter = { allowancePerChoice: maxTokens, tokensOf: (text) => meter.tokensOf(text) };
  const { blocks } = cutBlocks<unknown>(item.content, budget, {
    textOf: (part) => outputText([{ content: [part] }]),
    cut: (part, partTokens) =>
      isObject(part) && typeof part.text === "string"
        ? { ...part, text: cutText(part.text, partTokens, meter) }
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
  return {
    pieces: text ? [{ choice: 0, text }] : [],
    delivered: true,
    usage: normalizedUsage(json.usage),
    error: undefined,
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
    // Hosted tools (web and file search, code interpreter, image generation, MCP, computer use) are refused.
    refuseHostedTools(fields.tools, ["function", "custom"]);
    const stream = readStream(fields.stream);
    return {
      fields,
      stream,
      includeUsage: false,
      requestedOutputTokens: fields.max_output_tokens,
      choices: 1,
    };
  },

  promptTokenBound(request, model) {
    return promptTokenBound({ kind: "chat", body: promptBody(request), ...pricingOf(model) });
  },

  countPromptTokens(request, model) {
    return countPromptTokens("chat", promptBody(request), pricingOf(model).model, {
      imageTokens: pricingOf(model).imageTokens,
    });
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
