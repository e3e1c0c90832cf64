import { z } from "zod";

// The shapes an OpenAI-compatible backend sends back (https://platform.openai.com/docs/api-reference/chat).
// Objects are loose: fields we do not read (logprobs, system_fingerprint, vLLM or llama.cpp extras) are
// kept, because the gateway forwards these responses to the buyer.

const tokenCount = z.number().int().nonnegative();

/** Token usage as a backend reports it for /chat/completions and /completions. */
export const upstreamUsageSchema = z.looseObject({
  prompt_tokens: tokenCount,
  completion_tokens: tokenCount,
  total_tokens: tokenCount.optional(),
});
export type UpstreamUsage = z.infer<typeof upstreamUsageSchema>;

const toolCallDeltaSchema = z.looseObject({
  index: z.number().int().optional(),
  id: z.string().nullish(),
  type: z.string().nullish(),
  function: z
    .looseObject({
      name: z.string().nullish(),
      arguments: z.string().nullish(),
    })
    .nullish(),
});

const functionCallSchema = z.looseObject({
  name: z.string().nullish(),
  arguments: z.string().nullish(),
});

/** The generated part of a chat message or chat delta; every field is optional in a delta. */
const generatedMessageFields = {
  role: z.string().nullish(),
  content: z.string().nullish(),
  refusal: z.string().nullish(),
  // Reasoning models: vLLM and DeepSeek say reasoning_content, OpenRouter and Ollama say reasoning.
  reasoning_content: z.string().nullish(),
  reasoning: z.string().nullish(),
  tool_calls: z.array(toolCallDeltaSchema).nullish(),
  function_call: functionCallSchema.nullish(),
};

/** A non-streaming /chat/completions response. */
export const chatCompletionSchema = z.looseObject({
  id: z.string(),
  object: z.string().optional(),
  created: z.number().optional(),
  model: z.string(),
  choices: z.array(
    z.looseObject({
      index: z.number().int(),
      message: z.looseObject(generatedMessageFields),
      finish_reason: z.string().nullish(),
    }),
  ),
  usage: upstreamUsageSchema.nullish(),
});
export type ChatCompletion = z.infer<typeof chatCompletionSchema>;

/** One streamed /chat/completions chunk (`object: "chat.completion.chunk"`). */
export const chatCompletionChunkSchema = z.looseObject({
  id: z.string().optional(),
  object: z.string().optional(),
  created: z.number().optional(),
  model: z.string().optional(),
  // OpenAI sends `choices: []` on the usage chunk; some backends leave the field out there.
  choices: z
    .array(
      z.looseObject({
        index: z.number().int().optional(),
        delta: z.looseObject(generatedMessageFields).nullish(),
        finish_reason: z.string().nullish(),
      }),
    )
    .optional(),
  usage: upstreamUsageSchema.nullish(),
});
export type ChatCompletionChunk = z.infer<typeof chatCompletionChunkSchema>;

/** A non-streaming legacy /completions response. */
export const completionSchema = z.looseObject({
  id: z.string(),
  object: z.string().optional(),
  created: z.number().optional(),
  model: z.string(),
  choices: z.array(
    z.looseObject({
      index: z.number().int(),
      text: z.string(),
      finish_reason: z.string().nullish(),
    }),
  ),
  usage: upstreamUsageSchema.nullish(),
});
export type Completion = z.infer<typeof completionSchema>;

/** One streamed legacy /completions chunk (`object: "text_completion"`). */
export const completionChunkSchema = z.looseObject({
  id: z.string().optional(),
  object: z.string().optional(),
  created: z.number().optional(),
  model: z.string().optional(),
  choices: z
    .array(
      z.looseObject({
        index: z.number().int().optional(),
        text: z.string().nullish(),
        finish_reason: z.string().nullish(),
      }),
    )
    .optional(),
  usage: upstreamUsageSchema.nullish(),
});
export type CompletionChunk = z.infer<typeof completionChunkSchema>;

/** A /embeddings response; `embedding` is a base64 string when the request asked for `encoding_format: "base64"`. */
export const embeddingsResponseSchema = z.looseObject({
  object: z.string().optional(),
  model: z.string(),
  data: z.array(
    z.looseObject({
      object: z.string().optional(),
      index: z.number().int(),
      embedding: z.union([z.array(z.number()), z.string()]),
    }),
  ),
  usage: z
    .looseObject({
      prompt_tokens: tokenCount,
      total_tokens: tokenCount.optional(),
    })
    .nullish(),
});
export type EmbeddingsResponse = z.infer<typeof embeddingsResponseSchema>;

/** The error object OpenAI-compatible servers put in a failed response or in a stream event. */
export const backendErrorBodySchema = z.looseObject({
  error: z.union([
    z.string(),
    z.looseObject({
      message: z.string().optional(),
      type: z.string().nullish(),
      code: z.union([z.string(), z.number()]).nullish(),
    }),
  ]),
});
