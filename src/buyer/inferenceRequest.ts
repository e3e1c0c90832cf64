import {
  countCharacters,
  countPromptTokens,
  imageTokenBound,
  messagesPromptBody,
  type PromptKind,
  promptTokenBound,
  rerankPromptBody,
  responsesPromptBody,
} from "../pricing/index.js";

/**
 * Which inference API a request is for: OpenAI's chat, completions, embeddings, responses, image
 * generations, moderations, speech and transcriptions, Anthropic's messages, and rerank (Jina's, Cohere's, vLLM's).
 */
export type InferenceKind =
  | PromptKind
  | "messages"
  | "responses"
  | "image"
  | "moderation"
  | "rerank"
  | "speech"
  | "transcription";

/** What the buyer knows of an inference request before it is sent. */
export type InferenceRequest = {
  kind: InferenceKind;
  body: Record<string, unknown>;
  model: string | undefined;
  /**
   * The output limit the request asks for, if any: `max_completion_tokens` or `max_tokens` (chat),
   * `max_tokens` (completions, messages), `max_output_tokens` (responses).
   */
  requestedOutputTokens: number | undefined;
  stream: boolean;
};

/** Each route's path under the API base, by kind. */
const ROUTE_PATHS: Readonly<Record<InferenceKind, string>> = {
  chat: "/chat/completions",
  completion: "/completions",
  embedding: "/embeddings",
  messages: "/messages",
  responses: "/responses",
  image: "/images/generations",
  moderation: "/moderations",
  rerank: "/rerank",
  speech: "/audio/speech",
  transcription: "/audio/transcriptions",
};

/** The path of an API's route under the API base (`/chat/completions`, `/messages`, …). */
export function routePathOf(kind: InferenceKind): string {
  return ROUTE_PATHS[kind];
}

/** The kind of inference a URL path names, or undefined when it names none this buyer can price. */
export function kindOfPath(path: string): InferenceKind | undefined {
  const trimmed = path.replace(/\/+$/, "");
  if (trimmed.endsWith("/chat/completions")) return "chat";
  const kinds = Object.keys(ROUTE_PATHS) as InferenceKind[];
  return kinds.find((kind) => kind !== "chat" && trimmed.endsWith(ROUTE_PATHS[kind]));
}

/**
 * Reads an inference request from its URL and body: the kind from the path (`/chat/completions`,
 * `/completions`, `/embeddings`, `/messages`, `/responses`, `/images/generations`, `/moderations`, `/rerank`, `/audio/speech`) and the JSON
 * body. Anything else answers undefined: it can still be paid for, but the buyer cannot estimate
 * what it should cost.
 */
export function readInferenceRequest(
  url: string,
  bodyText: string | undefined,
): InferenceRequest | undefined {
  const kind = kindOfPath(new URL(url).pathname);
  // A transcription is a multipart form whose charge is its audio's duration: this buyer does not
  // price it, and pays the 402's maximum (which is the charge), as for any route it cannot price.
  if (kind === undefined || kind === "transcription" || bodyText === undefined) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(bodyText);
  } catch {
    return undefined;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined;
  const record = body as Record<string, unknown>;
  const requested = requestedOutputOf(kind, record);
  return {
    kind,
    body: record,
    model: typeof record.model === "string" ? record.model : undefined,
    requestedOutputTokens:
      typeof requested === "number" && Number.isSafeInteger(requested) && requested > 0
        ? requested
        : undefined,
    stream: record.stream === true,
  };
}

function requestedOutputOf(kind: InferenceKind, body: Record<string, unknown>): unknown {
  if (kind === "chat") return body.max_completion_tokens ?? body.max_tokens;
  if (kind === "responses") return body.max_output_tokens;
  if (
    kind === "image" ||
    kind === "embedding" ||
    kind === "moderation" ||
    kind === "rerank" ||
    kind === "speech" ||
    kind === "transcription"
  )
    return undefined;
  return body.max_tokens;
}

/** The prompt of a request as the pricing takes it apart: a kind, a body, and the model it names. */
function buyerPrompt(request: InferenceRequest): {
  kind: PromptKind;
  body: Record<string, unknown>;
  model?: string;
} {
  const { body } = request;
  const model = typeof body.model === "string" ? body.model : undefined;
  const named = model ? { model } : {};
  switch (request.kind) {
    case "messages":
      return { kind: "chat", body: messagesPromptBody(body), ...named };
    case "responses":
      return { kind: "chat", body: responsesPromptBody(body), ...named };
    case "image":
      return { kind: "embedding", body: { input: body.prompt }, ...named };
    case "moderation":
      return { ...moderationPrompt(body.input), ...named };
    case "rerank":
      return { kind: "embedding", body: rerankPromptBody(body), ...named };
    case "speech":
      // The text read aloud, and the instructions on how to read it, as the gateway bounds them.
      return {
        kind: "embedding",
        body: { input: body.instructions === undefined ? body.input : [body.input, body.instructions] },
        ...named,
      };
    case "transcription":
      return {
        kind: "embedding",
        body: { input: typeof body.prompt === "string" ? body.prompt : "" },
        ...named,
      };
    default:
      return { kind: request.kind, body };
  }
}

/**
 * The buyer's own upper bound on the request's prompt tokens, or undefined when it cannot be
 * bounded. Messages and responses are walked by the same content-block functions the gateway
 * prices them with; an image's prompt is bounded as one text.
 */
export async function buyerPromptBound(request: InferenceRequest): Promise<number | undefined> {
  try {
    return await promptTokenBound(buyerPrompt(request));
  } catch {
    return undefined;
  }
}

/**
 * The most a seller's own count of the request's prompt can honestly say (`countPromptTokens`, OpenAI's
 * documented count), whichever of the tokenizers it counts with (`o200k_base`, `cl100k_base`); images
 * count as in the buyer's bound. Undefined when the prompt cannot be taken apart.
 */
export async function buyerPromptCount(request: InferenceRequest): Promise<number | undefined> {
  try {
    const { kind, body, model } = buyerPrompt(request);
    const named = model ?? (typeof body.model === "string" ? body.model : undefined);
    const options = { imageTokens: imageTokenBound(named) };
    const counts = await Promise.all(
      (["o200k_base", "cl100k_base"] as const).map((tokenizer) =>
        countPromptTokens(kind, body, tokenizer, options),
      ),
    );
    return Math.max(...counts);
  } catch {
    return undefined;
  }
}

/**
 * The characters a speech request is charged for (`input_characters`): the Unicode code points of its
 * `input` and its `instructions`, or undefined when `input` is not a string.
 */
export function requestedInputCharacters(request: InferenceRequest): number | undefined {
  const { input, instructions } = request.body;
  if (typeof input !== "string") return undefined;
  // The gateway counts the instructions too: the model reads them as it reads the input.
  return countCharacters(input) + (typeof instructions === "string" ? countCharacters(instructions) : 0);
}

/** Images an image request asks for (`n`, default 1), or undefined when `n` is not a positive integer. */
export function requestedImages(request: InferenceRequest): number | undefined {
  const n = request.body.n ?? 1;
  return typeof n === "number" && Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * A moderation's input as the gateway prices it: strings as an embeddings `input`; multimodal items
 * as the content parts of one chat message, so that an image counts as an image, not as its bytes.
 */
function moderationPrompt(input: unknown): { kind: PromptKind; body: Record<string, unknown> } {
  const isItem = (item: unknown) => typeof item === "object" && item !== null && !Array.isArray(item);
  if (Array.isArray(input) && input.some(isItem)) {
    const content = input.map((item) => (typeof item === "string" ? { type: "text", text: item } : item));
    return { kind: "chat", body: { messages: [{ role: "user", content }] } };
  }
  return { kind: "embedding", body: { input } };
}
