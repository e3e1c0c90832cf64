import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import { z } from "zod";
import type { FakeGeneration, FakeServedRequest, FakeServerBehaviour } from "./fakeServerTypes.js";
import type { GenerationRequest } from "./openAiRequests.js";
import { sendJson } from "./sendJson.js";
import {
  sleepUntil,
  startEventStream,
  streamTokens,
  takeTokens,
  tokenDueAt,
  writeAndWait,
} from "./streamPacing.js";

// The Anthropic Messages API as a fake backend serves it: https://docs.anthropic.com/en/api/messages
// and https://docs.anthropic.com/en/docs/build-with-claude/streaming.

const blockSchema = z.looseObject({ type: z.string(), text: z.string().optional() });

/** POST /v1/messages: the fields the fake acts on, the rest kept. */
export const messagesRequestSchema = z.looseObject({
  model: z.string(),
  max_tokens: z.number().int().positive(),
  system: z.union([z.string(), z.array(blockSchema)]).optional(),
  messages: z
    .array(z.looseObject({ role: z.string(), content: z.union([z.string(), z.array(blockSchema)]) }))
    .min(1),
  stream: z.boolean().nullish(),
  thinking: z.looseObject({ type: z.string() }).nullish(),
});
export type MessagesRequest = z.infer<typeof messagesRequestSchema>;

const textOf = (content: string | readonly { text?: string | undefined }[]): string =>
  typeof content === "string" ? content : content.map((block) => block.text ?? "").join("\n");

/** The same conversation as a chat request, so one generator and one prompt count serve both APIs. */
export function messagesAsChat(body: MessagesRequest): GenerationRequest {
  const system = body.system === undefined ? [] : [{ role: "system", content: textOf(body.system) }];
  return {
    endpoint: "chat",
    body: {
      model: body.model,
      messages: [...system, ...body.messages.map((m) => ({ role: m.role, content: textOf(m.content) }))],
      max_tokens: body.max_tokens,
    },
  };
}

export type ServeMessagesParameters = {
  body: MessagesRequest;
  generation: FakeGeneration;
  behaviour: FakeServerBehaviour;
  response: ServerResponse;
  record: FakeServedRequest;
  closed: AbortSignal;
};

/**
 * Answers one Messages request: a whole `message`, or the stream of events (message_start with
 * the prompt's usage, a text block token by token, message_delta with the output's usage,
 * message_stop), paced like the chat routes and stopped at `max_tokens` unless told to ignore it.
 */
export async function serveMessages({
  body,
  generation,
  behaviour,
  response,
  record,
  closed,
}: ServeMessagesParameters): Promise<void> {
  const limit = behaviour.ignoreOutputLimit === true ? Number.POSITIVE_INFINITY : body.max_tokens;
  const tokens = takeTokens(generation.tokens, limit);
  const stopReason = tokens.length >= body.max_tokens ? "max_tokens" : "end_turn";
  const thinks =
    behaviour.thinking !== undefined &&
    (body.thinking == null ? behaviour.thinking.byDefault === true : body.thinking.type !== "disabled");
  const summary = thinks ? (behaviour.thinking?.summary ?? "") : "";
  const hidden =
    thinks || behaviour.thinking?.reportUnasked === true ? (behaviour.thinking?.hiddenTokens ?? 0) : 0;
  // Thinking is output: its summary as counted, and what it did not show.
  const summaryTokens = summary
    ? (generation.countCompletionTokens?.(summary) ?? summary.split(/\s+/).filter(Boolean).length)
    : 0;
  const outputTokens = (text: string) =>
    (generation.countCompletionTokens?.(text) ?? tokens.length) + summaryTokens + hidden;
  const thinkingBlock = { type: "thinking", thinking: summary, signature: "fake-thinking-signature" };
  const prompt = generation.promptTokens;
  const cacheRead = Math.min(behaviour.promptCache?.readTokens ?? 0, prompt);
  const cacheWrite = Math.min(behaviour.promptCache?.writeTokens ?? 0, prompt - cacheRead);
  const usage = (output: number) =>
    behaviour.reportUsage
      ? {
          input_tokens: prompt - cacheRead - cacheWrite,
          ...(behaviour.promptCache
            ? { cache_read_input_tokens: cacheRead, cache_creation_input_tokens: cacheWrite }
            : {}),
          output_tokens: output,
        }
      : undefined;
  const message = {
    id: `msg_${randomUUID().replaceAll("-", "")}`,
    type: "message",
    role: "assistant",
    model: body.model,
    content: [] as Record<string, unknown>[],
    stop_reason: null as string | null,
    stop_sequence: null,
    usage: usage(1),
  };
  const startedAt = performance.now();

  if (body.stream !== true) {
    if (!(await sleepUntil(tokenDueAt(behaviour, startedAt, Math.max(0, tokens.length - 1)), closed))) return;
    const text = tokens.join("");
    record.tokensSent = tokens.length;
    sendJson(
      response,
      record,
      200,
      {
        ...message,
        content: [...(thinks ? [thinkingBlock] : []), { type: "text", text }],
        stop_reason: stopReason,
        usage: usage(outputTokens(text)),
      },
      "completed",
    );
    return;
  }

  startEventStream(response, record);
  const send = (event: string, data: Record<string, unknown>) =>
    writeAndWait(response, `event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`, closed);
  if (!(await send("message_start", { message }))) return;
  const textIndex = thinks ? 1 : 0;
  if (thinks) {
    const start = { index: 0, content_block: { ...thinkingBlock, thinking: "", signature: "" } };
    if (!(await send("content_block_start", start))) return;
    const deltas = [
      { type: "thinking_delta", thinking: summary },
      { type: "signature_delta", signature: thinkingBlock.signature },
    ];
    for (const delta of deltas) if (!(await send("content_block_delta", { index: 0, delta }))) return;
    if (!(await send("content_block_stop", { index: 0 }))) return;
  }
  const textStart = { index: textIndex, content_block: { type: "text", text: "" } };
  if (!(await send("content_block_start", textStart))) return;
  if (!(await send("ping", {}))) return;
  // A backend that batches its output sends several tokens in one delta.
  const perChunk = Math.max(1, behaviour.tokensPerChunk ?? 1);
  const chunks = Array.from({ length: Math.ceil(tokens.length / perChunk) }, (_, i) =>
    tokens.slice(i * perChunk, (i + 1) * perChunk).join(""),
  );
  const streamed = await streamTokens({
    tokens: chunks,
    behaviour,
    startedAt,
    response,
    record,
    closed,
    sendToken: (token) =>
      send("content_block_delta", { index: textIndex, delta: { type: "text_delta", text: token } }),
  });
  if (!streamed) return;
  if (!(await send("content_block_stop", { index: textIndex }))) return;
  const delta = { stop_reason: stopReason, stop_sequence: null };
  const final = usage(outputTokens(tokens.join("")));
  if (
    !(await send("message_delta", {
      delta,
      ...(final ? { usage: { output_tokens: final.output_tokens } } : {}),
    }))
  )
    return;
  record.outcome = "completed";
  response.end(`event: message_stop\ndata: ${JSON.stringify({ type: "message_stop" })}\n\n`);
}
