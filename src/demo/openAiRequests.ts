import { z } from "zod";

// The requests a fake OpenAI-compatible server accepts: just the fields it acts on, the rest kept.

const maxTokensField = z.number().int().positive().nullish();

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
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** POST /v1/completions. */
export const completionRequestSchema = z.looseObject({
  model: z.string(),
  prompt: z.union([z.string(), z.array(z.string())]),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: maxTokensField,
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

/** The output limit the request sets: the smaller of `max_tokens` and `max_completion_tokens`, if any. */
export function requestedMaxTokens(request: GenerationRequest): number | undefined {
  const body: { max_tokens?: unknown; max_completion_tokens?: unknown } = request.body;
  const given = [body.max_tokens, body.max_completion_tokens].filter(
    (limit): limit is number => typeof limit === "number",
  );
  return given.length === 0 ? undefined : Math.min(...given);
}
