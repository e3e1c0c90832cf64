import type { PromptKind, UnitPrices, UsageUnit } from "../../pricing/index.js";
import type { StreamReceipt } from "../../protocol/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import type { AnswerMeter } from "../truncateAnswer.js";

import type { routes } from "./index.js";

/** Which inference API a request is for: a key of the route registry (`routes/index.ts`). */
export type RouteKind = keyof typeof routes;

/** The prompt part of a request: a body of the pricing's kind of prompt (chat messages, a completion prompt, an input). */
export type RoutePrompt = { kind: PromptKind; body: Record<string, unknown> };

/** Output text of one choice found in a chunk or a whole answer. */
export type OutputPiece = { choice: number; text: string };

/** What one parsed backend event or answer holds, as far as billing is concerned. */
export type OutputReading = {
  /** Generated text per choice (content, refusals, reasoning, tool calls…): everything billed as output. */
  pieces: OutputPiece[];
  /** The answer carried results (choices, embeddings), even if their text is empty. */
  delivered: boolean;
  /** The backend's `usage` object, unparsed. */
  usage: unknown;
  /** The backend reported an error instead of (or after) output. */
  error: string | undefined;
  /** Forward this stream event to the buyer; default: when it delivered output (a usage-only chunk is not). */
  forward?: boolean;
  /** Units delivered beyond tokens (images returned), counted by the gateway itself. */
  units?: Partial<Record<UsageUnit, number>>;
  /**
   * The answer holds output it shows only in part (an Anthropic thinking block): for a request that
   * said nothing of it, the backend's output count is believed up to the output limit.
   */
  hiddenOutput?: boolean;
  /**
   * The output is the model's reasoning shown as it thinks (a thinking block, a reasoning summary or
   * text), not its answer: a buyer that leaves during it has not begun to receive the answer.
   */
  reasoning?: boolean;
  /**
   * The part of `pieces` that is the model's own reasoning, in full (DeepSeek's and vLLM's
   * `reasoning_content`, a Responses `reasoning_text`), not a summary of it: reasoning the usage
   * itemizes counts it, so only the rest of the itemized reasoning was unseen.
   */
  reasoningInFull?: OutputPiece[];
};

/** How a route ends its streams, for APIs whose streams are not OpenAI's chunks and `[DONE]`. */
export type StreamTrailer = {
  /** The SSE text of the receipt event, sent once the charge is settled. */
  receipt(receipt: StreamReceipt): string;
  /** The SSE text of an error event in this API's shape. */
  error(message: string, code: string): string;
  /** The SSE text that ends a complete stream after the receipt ("" when the API has none). */
  done: string;
};

/** A request accepted by a route: only the fields the route prices and forwards. */
export type RouteRequest = {
  /** The allowed fields of the request, as received (unknown fields refused). */
  fields: Record<string, unknown>;
  stream: boolean;
  /** The client asked for the usage chunk in a stream. */
  includeUsage: boolean;
  /** The output limit the request asks for (`undefined`: the model's). */
  requestedOutputTokens: unknown;
  /** Choices generated, each up to the output limit. */
  choices: number;
  /** Images the request asks for, each priced at its size. */
  images?: number;
  /** The request asks for its prompt to be cached (Anthropic `cache_control`): only then are cache writes charged. */
  promptCache?: boolean;
  /**
   * The backend may read less of the prompt than it was sent (the Responses API's `truncation: "auto"`
   * drops input that does not fit): its count of the prompt is believed up to the bound, however low.
   */
  promptMayShrink?: boolean;
  /**
   * Output the model may generate and not stream, at most this many tokens (Anthropic's extended
   * thinking, of which Claude 4 models stream a summary and bill the whole): the backend's output count
   * is believed up to what was delivered plus this. Never more than the authorized output. Undefined
   * when the request says nothing of it: then an answer that shows hidden output (`hiddenOutput`)
   * may have up to the output limit of it.
   */
  hiddenOutputTokens?: number;
  /**
   * Characters of input text the request is charged for (`input_characters`: speech's `input`, in
   * Unicode code points): known exactly before it runs, so the quote's bound is the charge.
   */
  inputCharacters?: number;
  /**
   * Seconds of audio the request is charged for (`input_audio_seconds`: a transcription's file, its
   * duration read from the file and rounded up): known before it runs, so the quote's bound is the charge.
   */
  inputAudioSeconds?: number;
};

/**
 * One inference API, in one module: its request allow-list, prompt bound, backend body, and
 * how to read output and usage from its answers. Adding an API is one adapter and one registration.
 */
export type RouteAdapter = {
  readonly kind: RouteKind;
  /** Path under `/v1` on the gateway and under the backend's base URL. */
  readonly path: string;
  readonly canStream: boolean;
  /**
   * The API generates text billed as output tokens (chat, completions, messages, responses); false
   * for APIs that answer embeddings, images or classifications, whose models need no output price.
   */
  readonly outputTokens: boolean;
  /**
   * The buyer's request fields this API forwards to the backend as written (its allow-list), which a
   * backend's own output-limit field (`backend.outputLimitFields`) must not overwrite.
   */
  readonly forwardedFields?: ReadonlySet<string>;
  /** The request field that holds the prompt, named when a prompt is too large for a fixed price. */
  readonly promptField: string;
  /**
   * Units this route counts beyond input tokens, `compute_ms` and `requests` (and output tokens where
   * `outputTokens`): `images` for the image route, `input_characters` for speech, `input_audio_seconds` for transcriptions. A price on a unit no
   * route of the model counts is refused by the config.
   */
  readonly meters?: readonly UsageUnit[];
  /** `object` of this API's stream chunks, for the receipt event. */
  readonly chunkObject: string;
  /** A choice that adds nothing, for the receipt chunk of clients that read `choices[0]` of every chunk. */
  readonly emptyChunkChoice: Record<string, unknown>;
  /** The stream's events are named (`event:` lines), and forwarded with their names. */
  readonly namedEvents?: boolean;
  /**
   * The backend's usage may itemize reasoning it did not stream (`completion_tokens_details.reasoning_tokens`),
   * charged within the authorized output, whatever the request asked.
   */
  readonly reportsReasoning?: boolean;
  /** Receipt, error and end events in this API's streaming format; default OpenAI's chunks and `[DONE]`. */
  readonly streamTrailer?: StreamTrailer;
  /** Headers the backend of this API expects beyond the JSON content type (its key, its version). */
  backendHeaders?(apiKey: string | undefined): Record<string, string>;
  /** A gateway error (400, 404, 502, …) in this API's error shape; default OpenAI's `{ error }`. */
  errorBody?(status: number, message: string, code: string): Record<string, unknown>;
  /**
   * The API takes `multipart/form-data`, not JSON (a transcription's audio file): the form is read into
   * the body `readRequest` validates (throws TOLLGATE_REQUEST_INVALID naming the field), and the backend
   * is sent `encodeBody`'s form.
   */
  readForm?(form: FormData): Promise<Record<string, unknown>>;
  /** The backend request's body and content type, for an API whose body is not JSON (`readForm`). */
  encodeBody?(body: Record<string, unknown>): Promise<{ contentType: string; body: Uint8Array<ArrayBuffer> }>;
  /** Validates the body against the allow-list; throws TOLLGATE_REQUEST_INVALID naming the field. */
  readRequest(body: Record<string, unknown>): RouteRequest;
  /**
   * Why a model's fixed (`exact`) price does not cover this request beyond its prompt and its number of
   * outputs, which the quote checks itself (an image's size or quality other than the default), naming the
   * field; undefined when it does.
   */
  exactRefusal?(request: RouteRequest, model: ModelConfig): { reason: string; field: string } | undefined;
  /** This request's prices, when they depend on it (an image's size and quality); default the model's. */
  requestPrices?(request: RouteRequest, model: ModelConfig, prices: UnitPrices): UnitPrices;
  /**
   * What the model reads of the request, in the form the pricing takes apart (`promptTokenBound`
   * bounds it for the quote, `countPromptTokens` counts it when the backend reports no prompt usage,
   * `promptCountPlausible` weighs the usage it reports).
   */
  prompt(request: RouteRequest): RoutePrompt;
  /**
   * The prompt's text any model must read whatever its template, when `prompt`'s body wraps blocks in
   * JSON a backend may not read (keys, ids, signatures): what a backend's prompt count is weighed
   * against (`promptCountPlausible`). Default: every text of `prompt`'s body.
   */
  plainTexts?(request: RouteRequest): string[];
  /** The exact body the backend receives: allowed fields, the backend's model name, the output limit. */
  backendBody(request: RouteRequest, model: ModelConfig, outputLimit: number): Record<string, unknown>;
  /** Output of one stream chunk. */
  readChunk(json: unknown): OutputReading;
  /** A reader for one stream, for a route whose chunks are read against the ones before (default: `readChunk`). */
  streamReader?(): (json: unknown) => OutputReading;
  /** Output of a whole JSON answer. */
  readAnswer(json: unknown): OutputReading;
  /**
   * The API answers bytes, not JSON (speech's audio): the answer is read whole as bytes, whatever its
   * content type, and this says whether it delivered (`delivered`) or failed (`error`: an empty body, a
   * JSON error, a content type that is not this API's). A delivered answer is charged, then forwarded
   * byte for byte with the backend's content type; any other is neither. Such a route never streams.
   */
  readBytes?(bytes: Uint8Array, contentType: string, request: RouteRequest): OutputReading;
  /**
   * Why a whole answer holds fewer results than the request paid for in full (embeddings for some
   * of its inputs only), or undefined: such an answer is neither forwarded nor charged. A route that has
   * it is answered whole: its `readChunk` refuses a stream, which would be forwarded before it could be checked.
   */
  missingResults?(json: unknown, request: RouteRequest): string | undefined;
  /**
   * A copy of a whole JSON answer that went past the output limit, cut to the meter's allowance
   * and marked as stopped at the limit; undefined when it cannot be cut. Default: chat's and
   * completions' `choices`.
   */
  cutAnswer?(
    answer: Record<string, unknown>,
    choices: number,
    meter: AnswerMeter,
  ): Record<string, unknown> | undefined;
  /**
   * A copy of one stream chunk that went past the output limit, its text cut to what each choice
   * may still receive (`roomFor`), so a backend that sends many tokens at once is forwarded up to
   * the limit rather than not at all; undefined when it cannot be cut. Default: chat's and
   * completions' `choices`.
   */
  cutChunk?(
    chunk: Record<string, unknown>,
    roomFor: (choice: number) => number,
    meter: AnswerMeter,
  ): Record<string, unknown> | undefined;
};
