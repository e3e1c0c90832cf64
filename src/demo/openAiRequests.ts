import { z } from "zod";

// The requests a fake OpenAI-compatible server accepts: just the fields it acts on, the rest kept.

const maxTokensField = z.number().int().positive().nullish();
const choiceCountField = z.number().int().positive().max(128).nullish();

const contentPartSchema = z.looseObject({ type: z.string(), text: z.string().optional() });

/** POST /v1/chat/completions. */
export const chatRequestSchema = z.looseObject({
  model: z.string(),
  messages: z
    .array(
      z.looseObject({
        role: z.string(),
        name: z.string().optional(),
        content: z.union([z.string(), z.array(contentPartSchema)]).nullish(),
      }),
    )
    .min(1),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: maxTokensField,
  max_completion_tokens: maxTokensField,
  n: choiceCountField,
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** POST /v1/completions. */
export const completionRequestSchema = z.looseObject({
  model: z.string(),
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: maxTokensField,
  n: choiceCountField,
  best_of: choiceCountField,
});
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

/** POST /v1/embeddings. */
export const embeddingsRequestSchema = z.looseObject({
  model: z.string(),
  input: z.union([z.string(), z.array(z.string())]),
  encoding_format: z.enum(["float", "base64"]).optional(),
});
export type EmbeddingsRequest = z.infer<typeof embeddingsRequestSchema>;

/** A generation request, tagged by endpoint. */
export type GenerationRequest =
  | { endpoint: "chat"; body: ChatRequest }
  | { endpoint: "completion"; body: CompletionRequest };

/** The text of one chat message: a string, or the text parts of a multi-part content. */
export function messageText(content: ChatRequest["messages"][number]["content"]): string {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  return content
    .map((part) => part.text ?? "")
    .filter((text) => text.length > 0)
    .join("\n");
}

/** All prompt text of a generation request, in order: message contents, or the prompt strings. */
export function promptTexts(request: GenerationRequest): string[] {
  if (request.endpoint === "chat")
    return request.body.messages.map((message) => messageText(message.content));
  return typeof request.body.prompt === "string" ? [request.body.prompt] : request.body.prompt;
}

/** The prompts of a generation request, one per choice group: the one chat, or each completion prompt. */
export function promptGroups(request: GenerationRequest): GenerationRequest[] {
  if (request.endpoint === "chat" || typeof request.body.prompt === "string") return [request];
  return request.body.prompt.map((prompt) => ({ endpoint: "completion", body: { ...request.body, prompt } }));
}

/**
 * A copy of a raw request body whose `stream` and `stream_options.include_usage` are booleans by
 * truthiness, as a server that tests `if body.stream:` reads them: `"false"` streams too.
 */
export function laxStreamBody(body: unknown): unknown {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return body;
  const { stream, stream_options: options } = body as { stream?: unknown; stream_options?: unknown };
  const includeUsage = typeof options === "object" && options !== null && "include_usage" in options;
  return {
    ...body,
    stream: Boolean(stream),
    ...(includeUsage
      ? { stream_options: { ...options, include_usage: Boolean(options.include_usage) } }
      : {}),
  };
}
