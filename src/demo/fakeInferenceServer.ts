import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { audioSeconds } from "../pricing/index.js";
import { deterministicEmbedding } from "./deterministicEmbedding.js";
import type { FakeGeneration, FakeServedRequest, FakeServerBehaviour } from "./fakeServerTypes.js";
import { generatedPng } from "./generatedPng.js";
import { isJsonGarbage, sendJsonGarbage, sendRateLimited, stallUntilClosed } from "./misbehaviour.js";
import { type ModerationsRequest, moderationAnswer, moderationsRequestSchema } from "./moderationResults.js";
import {
  chatRequestSchema,
  completionRequestSchema,
  type EmbeddingsRequest,
  embeddingsRequestSchema,
  type GenerationRequest,
  laxStreamBody,
} from "./openAiRequests.js";
import { wireEmbeddings, wireError, wireModelList } from "./openAiWire.js";
import { requestedMaxTokens } from "./outputLimit.js";
import { planChoices } from "./planChoices.js";
import { type RerankRequest, rerankAnswer, rerankRequestSchema } from "./rerankResults.js";
import { sendJson } from "./sendJson.js";
import { answerGeneration, type GenerationRun, streamGeneration } from "./serveGeneration.js";
import {
  type MessagesRequest,
  messagesAsChat,
  messagesRequestSchema,
  serveMessages,
} from "./serveMessages.js";
import {
  type ResponsesRequest,
  responsesAsChat,
  responsesRequestSchema,
  serveResponses,
} from "./serveResponses.js";
import { type SpeechRequest, speechAudio, speechRequestSchema } from "./speechAudio.js";
import {
  readForm,
  type TranscriptionRequest,
  transcriptAnswer,
  transcriptionRequestSchema,
} from "./transcriptText.js";

export type {
  FakeGarbage,
  FakeGeneration,
  FakeServedRequest,
  FakeServerBehaviour,
  FakeServerMisbehaviour,
  OutputLimitField,
} from "./fakeServerTypes.js";

export type StartFakeInferenceServerParameters = {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Listed by GET /v1/models; requests may name any model and get it echoed back. */
  models: readonly string[];
  /** One choice's generation; called once per choice (`n`, `best_of`, each prompt of a prompt array). */
  generate: (request: GenerationRequest) => FakeGeneration;
  /** Prompt tokens of an embeddings request. */
  countInputTokens: (inputs: readonly string[]) => number;
  behaviour: () => FakeServerBehaviour;
  /** Called with each request's record as it arrives; the record keeps changing until `endedAt` is set. */
  record?: (request: FakeServedRequest) => void;
};

export type FakeInferenceServer = {
  /** Base URL including `/v1`. */
  url: string;
  port: number;
  /** Resolves once no request is in progress (each has seen its connection close). */
  whenIdle: () => Promise<void>;
  close: () => Promise<void>;
};

const maxBodyBytes = 8 * 1024 * 1024;

/** POST /v1/images/generations: the fields the fake acts on, the rest kept. */
const imagesRequestSchema = z.looseObject({
  model: z.string(),
  prompt: z.string().min(1),
  n: z.number().int().min(1).max(10).nullish(),
  size: z.string().nullish(),
});

/**
 * An OpenAI-compatible HTTP server that generates the tokens it is given, at a pace, with optional
 * failures and misbehaviours: the shared core of the demo backend and the tests' mock backend. Speaks
 * the real wire format: POST /v1/chat/completions and /v1/completions (streaming or not, `n` choices,
 * prompt arrays, `usage` and `stream_options.include_usage`), POST /v1/embeddings, POST /v1/messages
 * (Anthropic's Messages API) and POST /v1/responses (OpenAI's Responses API), JSON and streaming
 * events, POST /v1/images/generations (small generated PNGs), POST /v1/moderations (results from
 * a word list, no usage, as OpenAI answers), POST /v1/rerank (documents by word overlap with the
 * query, usage `total_tokens`), POST /v1/audio/speech (a tone per character, as WAV), POST /v1/audio/transcriptions (a sentence naming
 * the file's size, with its duration as usage), GET /v1/models.
 */
export async function startFakeInferenceServer(
  parameters: StartFakeInferenceServerParameters,
): Promise<FakeInferenceServer> {
  const host = parameters.host ?? "127.0.0.1";
  const createdAt = Math.floor(Date.now() / 1000);
  let inProgress = 0;
  let idleWaiters: Array<() => void> = [];

  const server = createServer((request, response) => {
    const record: FakeServedRequest = {
      method: request.method ?? "GET",
      path: (request.url ?? "/").split("?")[0] ?? "/",
      body: undefined,
      receivedAt: Date.now(),
      stream: false,
      tokensSent: 0,
      clientAborted: false,
      status: undefined,
      outcome: "in-progress",
      endedAt: undefined,
    };
    const closed = new AbortController();
    inProgress++;
    response.on("close", () => {
      if (record.outcome === "in-progress") {
        record.outcome = "client-aborted";
        record.clientAborted = true;
      }
      record.endedAt = Date.now();
      closed.abort();
      inProgress--;
      if (inProgress === 0) {
        const waiters = idleWaiters;
        idleWaiters = [];
        for (const resolve of waiters) resolve();
      }
    });
    parameters.record?.(record);
    handle(request, response, record, closed.signal).catch((error: unknown) => {
      if (!response.headersSent) {
        sendJson(
          response,
          record,
          500,
          wireError(`internal error: ${String(error)}`, "server_error"),
          "rejected",
        );
      } else {
        response.destroy();
      }
    });
  });

  async function handle(
    request: IncomingMessage,
    response: ServerResponse,
    record: FakeServedRequest,
    closed: AbortSignal,
  ): Promise<void> {
    if (record.method === "GET" && record.path === "/v1/models") {
      sendJson(response, record, 200, wireModelList(parameters.models, createdAt), "completed");
      return;
    }
    const route =
      record.path === "/v1/chat/completions"
        ? "chat"
        : record.path === "/v1/completions"
          ? "completion"
          : record.path === "/v1/embeddings"
            ? "embeddings"
            : record.path === "/v1/messages"
              ? "messages"
              : record.path === "/v1/responses"
                ? "responses"
                : record.path === "/v1/images/generations"
                  ? "images"
                  : record.path === "/v1/moderations"
                    ? "moderations"
                    : record.path === "/v1/rerank"
                      ? "rerank"
                      : record.path === "/v1/audio/speech"
                        ? "speech"
                        : record.path === "/v1/audio/transcriptions"
                          ? "transcription"
                          : undefined;
    if (route === undefined || record.method !== "POST") {
      const message = `no route ${record.method} ${record.path}`;
      sendJson(response, record, 404, wireError(message, "invalid_request_error", "not_found"), "rejected");
      return;
    }
    const bytes = await readBody(request);
    let audio: Uint8Array | undefined;
    try {
      if (route === "transcription") {
        const form = await readForm(bytes, request.headers["content-type"] ?? "");
        audio = form.audio;
        record.body = form.fields;
      } else record.body = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      const message = route === "transcription" ? "body is not a multipart form" : "body is not JSON";
      sendJson(response, record, 400, wireError(message, "invalid_request_error"), "rejected");
      return;
    }
    const behaviour = parameters.behaviour();
    const schema =
      route === "chat"
        ? chatRequestSchema
        : route === "completion"
          ? completionRequestSchema
          : route === "messages"
            ? messagesRequestSchema
            : route === "responses"
              ? responsesRequestSchema
              : route === "images"
                ? imagesRequestSchema
                : route === "moderations"
                  ? moderationsRequestSchema
                  : route === "rerank"
                    ? rerankRequestSchema
                    : route === "speech"
                      ? speechRequestSchema
                      : route === "transcription"
                        ? transcriptionRequestSchema
                        : embeddingsRequestSchema;
    // Parse a copy when lax: the record keeps the body exactly as it came.
    const parsed = (schema as z.ZodType).safeParse(
      behaviour.laxStream === true ? laxStreamBody(record.body) : record.body,
    );
    if (!parsed.success) {
      const message = parsed.error.issues
        .map((issue) => `${issue.path.join(".")}: ${issue.message}`)
        .join("; ");
      sendJson(response, record, 400, wireError(message, "invalid_request_error"), "rejected");
      return;
    }
    if (behaviour.stallBeforeHeaders === true) {
      await stallUntilClosed(closed);
      return;
    }
    if (behaviour.rateLimit !== undefined) {
      sendRateLimited(response, record, behaviour.rateLimit.retryAfter);
      return;
    }
    if (behaviour.failBeforeOutput) {
      const body = wireError("the backend failed (injected failure)", "server_error");
      sendJson(response, record, behaviour.failStatus, body, "failed-before-output");
      return;
    }
    if (route === "embeddings") {
      answerEmbeddings(response, record, parsed.data as EmbeddingsRequest);
      return;
    }
    if (route === "moderations") {
      sendJson(response, record, 200, moderationAnswer(parsed.data as ModerationsRequest), "completed");
      return;
    }
    if (route === "rerank") {
      const answer = rerankAnswer(parsed.data as RerankRequest, parameters.countInputTokens);
      sendJson(response, record, 200, answer, "completed");
      return;
    }
    if (route === "transcription") {
      const answer = transcriptAnswer(
        parsed.data as TranscriptionRequest,
        audio === undefined ? undefined : await audioSeconds(audio),
      );
      record.status = 200;
      record.outcome = "completed";
      response.writeHead(200, { "content-type": answer.contentType });
      response.end(answer.body);
      return;
    }
    if (route === "speech") {
      const audio = speechAudio(parsed.data as SpeechRequest);
      record.status = 200;
      record.outcome = "completed";
      response.writeHead(200, { "content-type": audio.contentType });
      response.end(audio.body);
      return;
    }
    if (route === "images") {
      const body = parsed.data as z.infer<typeof imagesRequestSchema>;
      const shape = behaviour.imageAnswer ?? {};
      const data = Array.from({ length: shape.count ?? body.n ?? 1 }, (_, index) =>
        shape.empty ? {} : { b64_json: generatedPng(`${body.prompt}#${index}`).toString("base64") },
      );
      const created = Math.floor(Date.now() / 1000);
      if (shape.stream) {
        record.status = 200;
        record.outcome = "completed";
        response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
        for (const image of data) response.write(`data: ${JSON.stringify({ created, data: [image] })}\n\n`);
        response.end();
        return;
      }
      sendJson(response, record, 200, { created, data }, "completed");
      return;
    }
    if (route === "messages") {
      const body = parsed.data as MessagesRequest;
      const generation = parameters.generate(messagesAsChat(body));
      await serveMessages({ body, generation, behaviour, response, record, closed });
      return;
    }
    if (route === "responses") {
      const body = parsed.data as ResponsesRequest;
      const generation = parameters.generate(responsesAsChat(body));
      await serveResponses({ body, generation, behaviour, response, record, closed });
      return;
    }
    if (behaviour.garbage !== undefined && isJsonGarbage(behaviour.garbage)) {
      sendJsonGarbage(response, record, behaviour.garbage);
      return;
    }
    const generationRequest = { endpoint: route, body: parsed.data } as GenerationRequest;
    const stream = generationRequest.body.stream === true;
    record.stream = stream;
    const run: GenerationRun = {
      request: generationRequest,
      plan: planChoices(generationRequest, parameters.generate),
      behaviour,
      response,
      record,
      closed,
      identity: {
        id: `${route === "chat" ? "chatcmpl" : "cmpl"}-${randomUUID().replaceAll("-", "")}`,
        created: Math.floor(Date.now() / 1000),
        model: generationRequest.body.model,
      },
      maxTokens:
        behaviour.ignoreOutputLimit === true
          ? undefined
          : requestedMaxTokens(generationRequest, behaviour.outputLimitField),
      usageRequested: generationRequest.body.stream_options?.include_usage === true,
      startedAt: performance.now(),
    };
    await (stream ? streamGeneration(run) : answerGeneration(run));
  }

  function answerEmbeddings(
    response: ServerResponse,
    record: FakeServedRequest,
    body: EmbeddingsRequest,
  ): void {
    const inputs = typeof body.input === "string" ? [body.input] : body.input;
    const vectors = inputs.map((input) => deterministicEmbedding(input));
    const answer = wireEmbeddings(
      body.model,
      vectors,
      body.encoding_format ?? "float",
      parameters.countInputTokens(inputs),
    );
    sendJson(response, record, 200, answer, "completed");
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(parameters.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;

  return {
    url: `http://${urlHost}:${port}/v1`,
    port,
    whenIdle: () =>
      inProgress === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve)),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}

async function readBody(request: IncomingMessage): Promise<Uint8Array<ArrayBuffer>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > maxBodyBytes) throw new Error("request body too large");
    chunks.push(buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}
