import { chatPlainTexts } from "../../pricing/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import type { RouteAdapter, RouteRequest } from "./RouteAdapter.js";
import { readChoices } from "./readChoices.js";
import {
  GENERATION_FIELDS,
  invalidField,
  pickAllowedFields,
  readCount,
  readIncludeUsage,
  readNumbers,
  readStream,
  refuseUndeclaredTools,
  SAMPLING_NUMBERS,
} from "./requestFields.js";

/** OpenAI chat fields forwarded, plus the sampling extensions vLLM and llama.cpp document. */
const ALLOWED = new Set<string>([
  ...GENERATION_FIELDS,
  "model",
  "messages",
  "stream",
  "stream_options",
  "max_tokens",
  "max_completion_tokens",
  "n",
  "top_logprobs",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "functions",
  "function_call",
  "response_format",
  "reasoning_effort",
]);
/** Accepted and not forwarded: they change nothing the backend bills. */
const IGNORED = new Set([
  "store",
  "metadata",
  "service_tier",
  "prediction",
  "safety_identifier",
  "prompt_cache_key",
]);
const NUMBERS = [...SAMPLING_NUMBERS, "top_logprobs"];
/** Content part types whose size the bound knows (text, images, inline audio and files). */
const PART_TYPES = new Set(["text", "image_url", "input_image", "input_audio", "file", "refusal"]);

/** The forwarded fields a backend renders into the prompt: messages, and the pricing's chat fields. */
function promptBody(request: RouteRequest): Record<string, unknown> {
  const { messages, tools, functions, response_format, tool_choice, function_call } = request.fields;
  return { messages, tools, functions, response_format, tool_choice, function_call };
}

/** Refuses content parts the bound cannot size (video, audio by URL, …): they would be served unpriced. */
function checkContentParts(messages: unknown): void {
  if (!Array.isArray(messages)) throw invalidField("messages", "must be a non-empty array");
  messages.forEach((message, index) => {
    const content = (message as { content?: unknown } | null)?.content;
    if (!Array.isArray(content)) return;
    content.forEach((part, partIndex) => {
      const type = (part as { type?: unknown } | null)?.type;
      if (typeof type !== "string" || !PART_TYPES.has(type))
        throw invalidField(
          `messages[${index}].content[${partIndex}].type`,
          `${JSON.stringify(type)} cannot be priced by this gateway; use ${[...PART_TYPES].join(", ")}`,
        );
    });
  });
}

/** `POST /v1/chat/completions`, the OpenAI Chat Completions API. */
export const chatCompletions: RouteAdapter = {
  kind: "chat",
  path: "/chat/completions",
  canStream: true,
  reportsReasoning: true,
  outputTokens: true,
  forwardedFields: ALLOWED,
  promptField: "messages",
  chunkObject: "chat.completion.chunk",
  emptyChunkChoice: { index: 0, delta: { content: "" }, finish_reason: null },

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/chat/completions");
    readNumbers(fields, NUMBERS);
    checkContentParts(fields.messages);
    // Chat's own tools are functions and custom tools; another type is a provider's hosted tool.
    refuseUndeclaredTools(fields.tools, ["function", "custom"], "a function or custom tool");
    const stream = readStream(fields.stream);
    return {
      fields,
      stream,
      includeUsage: stream && readIncludeUsage(fields.stream_options),
      requestedOutputTokens: fields.max_completion_tokens ?? fields.max_tokens,
      choices: readCount(fields.n, "n", 128),
    };
  },

  prompt(request) {
    return { kind: "chat", body: promptBody(request) };
  },

  plainTexts(request) {
    return chatPlainTexts(request.fields);
  },

  backendBody(request: RouteRequest, model: ModelConfig, outputLimit: number) {
    const body: Record<string, unknown> = { ...request.fields, model: model.backend.model ?? model.id };
    // Keep the field the client chose (reasoning models accept only max_completion_tokens).
    if (request.fields.max_completion_tokens !== undefined && request.fields.max_completion_tokens !== null) {
      delete body.max_tokens;
      body.max_completion_tokens = outputLimit;
    } else {
      delete body.max_completion_tokens;
      body.max_tokens = outputLimit;
    }
    for (const field of model.backend.outputLimitFields) body[field] = outputLimit;
    body.stream = request.stream;
    if (request.stream) body.stream_options = { include_usage: true };
    else delete body.stream_options;
    return body;
  },

  readChunk: readChoices,
  readAnswer: readChoices,
};
