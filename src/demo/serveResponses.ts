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

// The OpenAI Responses API as a fake backend serves it: https://platform.openai.com/docs/api-reference/responses
// and its streaming events (https://platform.openai.com/docs/api-reference/responses-streaming).

const partSchema = z.looseObject({ type: z.string(), text: z.string().optional() });

/** POST /v1/responses: the fields the fake acts on, the rest kept. */
export const responsesRequestSchema = z.looseObject({
  model: z.string(),
  input: z.union([
    z.string(),
    z
      .array(
        z.looseObject({
          role: z.string().optional(),
          content: z.union([z.string(), z.array(partSchema)]).optional(),
        }),
      )
      .min(1),
  ]),
  instructions: z.string().nullish(),
  max_output_tokens: z.number().int().positive().nullish(),
  stream: z.boolean().nullish(),
});
export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;

const textOf = (content: string | readonly { text?: string | undefined }[] | undefined): string =>
  content === undefined
    ? ""
    : typeof content === "string"
      ? content
      : content.map((p) => p.text ?? "").join("\n");

/** The same conversation as a chat request, so one generator and one prompt count serve every API. */
export function responsesAsChat(body: ResponsesRequest): GenerationRequest {
  const system = body.instructions ? [{ role: "system", content: body.instructions }] : [];
  const input =
    typeof body.input === "string"
      ? [{ role: "user", content: body.input }]
      : body.input.map((item) => ({ role: item.role ?? "user", content: textOf(item.content) }));
  return { endpoint: "chat", body: { model: body.model, messages: [...system, ...input] } };
}

export type ServeResponsesParameters = {
  body: ResponsesRequest;
  generation: FakeGeneration;
  behaviour: FakeServerBehaviour;
  response: ServerResponse;
  record: FakeServedRequest;
  closed: AbortSignal;
};

/**
 * Answers one Responses request: a whole `response` object, or its event stream (created,
 * output item and content part added, one `response.output_text.delta` per token, the `.done`
 * events, and `response.completed` with usage), stopped at `max_output_tokens` unless told to ignore it.
 */
export async function serveResponses({
  body,
  generation,
  behaviour,
  response,
  record,
  closed,
}: ServeResponsesParameters): Promise<void> {
  const maxTokens = body.max_output_tokens ?? Number.POSITIVE_INFINITY;
  const limit = behaviour.ignoreOutputLimit === true ? Number.POSITIVE_INFINITY : maxTokens;
  const tokens = takeTokens(generation.tokens, limit);
  const text = tokens.join("");
  const outputTokens = generation.countCompletionTokens?.(text) ?? tokens.length;
  const id = `resp_${randomUUID().replaceAll("-", "")}`;
  const itemId = `msg_${randomUUID().replaceAll("-", "")}`;
  const inputTokens = behaviour.usageOverride?.prompt_tokens ?? generation.promptTokens;
  const usage = behaviour.reportUsage
    ? {
        input_tokens: inputTokens,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: outputTokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: inputTokens + outputTokens,
      }
    : null;
  const part = (partText: string) => ({ type: "output_text", text: partText, annotations: [] });
  const item = (partText: string, status: string) => ({
    id: itemId,
    type: "message",
    role: "assistant",
    status,
    content: [part(partText)],
  });
  const incomplete = tokens.length >= maxTokens;
  const responseObject = (status: string, output: unknown[], withUsage: boolean) => ({
    id,
    object: "response",
    created_at: Math.floor(Date.now() / 1000),
    status,
    model: body.model,
    output,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    usage: withUsage ? usage : null,
  });
  const startedAt = performance.now();
  const finalStatus = incomplete ? "incomplete" : "completed";

  if (body.stream !== true) {
    if (!(await sleepUntil(tokenDueAt(behaviour, startedAt, Math.max(0, tokens.length - 1)), closed))) return;
    record.tokensSent = tokens.length;
    sendJson(
      response,
      record,
      200,
      responseObject(finalStatus, [item(text, finalStatus)], true),
      "completed",
    );
    return;
  }

  startEventStream(response, record);
  let sequence = 0;
  const send = (type: string, data: Record<string, unknown>) =>
    writeAndWait(
      response,
      `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...data })}\n\n`,
      closed,
    );
  if (!(await send("response.created", { response: responseObject("in_progress", [], false) }))) return;
  if (
    !(await send("response.output_item.added", {
      output_index: 0,
      item: { ...item("", "in_progress"), content: [] },
    }))
  )
    return;
  const where = { item_id: itemId, output_index: 0, content_index: 0 };
  if (!(await send("response.content_part.added", { ...where, part: part("") }))) return;
  const streamed = await streamTokens({
    tokens,
    behaviour,
    startedAt,
    response,
    record,
    closed,
    sendToken: (token) => send("response.output_text.delta", { ...where, delta: token }),
  });
  if (!streamed) return;
  if (!(await send("response.output_text.done", { ...where, text }))) return;
  if (!(await send("response.content_part.done", { ...where, part: part(text) }))) return;
  if (!(await send("response.output_item.done", { output_index: 0, item: item(text, finalStatus) }))) return;
  const last = incomplete ? "response.incomplete" : "response.completed";
  const data = {
    type: last,
    sequence_number: sequence++,
    response: responseObject(finalStatus, [item(text, finalStatus)], true),
  };
  record.outcome = "completed";
  response.end(`event: ${last}\ndata: ${JSON.stringify(data)}\n\n`);
}
