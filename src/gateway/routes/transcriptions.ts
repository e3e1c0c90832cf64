import {
  AUDIO_DURATION_FORMATS,
  audioSeconds,
  MAX_AUDIO_FILE_BYTES,
  MAX_AUDIO_SECONDS,
} from "../../pricing/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import type { OutputReading, RouteAdapter, RouteRequest } from "./RouteAdapter.js";
import { errorOf } from "./readChoices.js";
import { invalidField, pickAllowedFields, wholeAnswerRequest } from "./requestFields.js";

// OpenAI's speech-to-text API: an audio `file` sent as multipart/form-data, answered with its
// transcript in `response_format`, priced per second of audio (whisper-1: $0.006 / minute).

const GRANULARITIES = "timestamp_granularities[]";
const ALLOWED = new Set([
  "file",
  "model",
  "language",
  "prompt",
  "response_format",
  "temperature",
  GRANULARITIES,
  "stream",
]);
const IGNORED = new Set<string>();

/** The transcript formats OpenAI answers in: JSON (`json`, `verbose_json`) or text (`text`, `srt`, `vtt`). */
const RESPONSE_FORMATS = ["json", "text", "srt", "vtt", "verbose_json"] as const;
const JSON_FORMATS = new Set(["json", "verbose_json"]);

/** The audio file of a transcription request as the gateway read it from the form. */
export type AudioUpload = {
  bytes: Uint8Array<ArrayBuffer>;
  name: string;
  type: string;
  /** Its duration in whole seconds, rounded up; undefined when it could not be read from the file. */
  seconds: number | undefined;
};

const isAudioUpload = (value: unknown): value is AudioUpload =>
  typeof value === "object" && value !== null && (value as AudioUpload).bytes instanceof Uint8Array;

const fail = (error: string): OutputReading => ({ pieces: [], delivered: false, usage: undefined, error });

/** The media type of a content type header, lowercased, without its parameters. */
const mediaType = (contentType: string) => contentType.split(";")[0]?.trim().toLowerCase() ?? "";

/**
 * The fields of a transcription form: text fields as strings (`timestamp_granularities[]` as the list of
 * its values), the file's bytes with its duration read from them. A field given twice, or a file in a
 * text field, is refused by name; a file above 25 MB is refused before it is read.
 */
async function readTranscriptionForm(form: FormData): Promise<Record<string, unknown>> {
  const body: Record<string, unknown> = {};
  for (const [key, value] of form.entries()) {
    if (typeof value !== "string") {
      if (key !== "file") throw invalidField(key, "must be text, not a file");
      if (body.file !== undefined) throw invalidField("file", "may be given once");
      if (value.size > MAX_AUDIO_FILE_BYTES)
        throw invalidField(
          "file",
          `may hold at most ${MAX_AUDIO_FILE_BYTES} bytes (25 MB); this one holds ${value.size}`,
        );
      const bytes = new Uint8Array(await value.arrayBuffer());
      const hint = /^(audio|video)\//i.test(value.type) ? value.type : undefined;
      const upload: AudioUpload = {
        bytes,
        name: value.name || "audio",
        type: value.type,
        seconds: bytes.byteLength > 0 ? await audioSeconds(bytes, hint) : undefined,
      };
      body.file = upload;
    } else if (key === GRANULARITIES) {
      body[key] = [...((body[key] as string[] | undefined) ?? []), value];
    } else {
      if (body[key] !== undefined) throw invalidField(key, "may be given once");
      body[key] = value;
    }
  }
  return body;
}

/** The form a backend receives: the same fields, the file with its name and type. */
async function encodeTranscriptionForm(
  body: Record<string, unknown>,
): Promise<{ contentType: string; body: Uint8Array<ArrayBuffer> }> {
  const form = new FormData();
  for (const [key, value] of Object.entries(body)) {
    if (isAudioUpload(value)) form.append(key, new Blob([value.bytes], { type: value.type }), value.name);
    else if (Array.isArray(value)) for (const item of value) form.append(key, String(item));
    else if (value !== undefined) form.append(key, String(value));
  }
  const encoded = new Response(form);
  return {
    contentType: encoded.headers.get("content-type") ?? "multipart/form-data",
    body: new Uint8Array(await encoded.arrayBuffer()),
  };
}

/**
 * A transcript the buyer can use, in the format it asked for: for `json` and `verbose_json` a JSON
 * object whose `text` is not empty, for `text`, `srt` and `vtt` a non-empty `text/*` body. An error's
 * JSON, an event stream, an empty transcript or the other kind of body is not one.
 */
function readTranscript(bytes: Uint8Array, contentType: string, request: RouteRequest): OutputReading {
  const format = String(request.fields.response_format ?? "json");
  const type = mediaType(contentType);
  const isJson = type === "application/json" || type.endsWith("+json");
  const text = new TextDecoder().decode(bytes);
  let json: unknown;
  if (isJson) {
    try {
      json = JSON.parse(text);
    } catch {
      return fail("the backend answered JSON it could not parse");
    }
  }
  if (JSON_FORMATS.has(format)) {
    if (!isJson) return fail(`the backend answered ${type || "no content type"}, not a ${format} transcript`);
    const transcript = (json as { text?: unknown } | null)?.text;
    if (typeof transcript !== "string")
      return fail(`the backend answered JSON with no text (${errorOf(json) ?? "no error message"})`);
    if (transcript.trim() === "") return fail("the backend answered an empty transcript");
    return { pieces: [], delivered: true, usage: undefined, error: undefined };
  }
  if (isJson)
    return fail(
      `the backend answered JSON, not a ${format} transcript (${errorOf(json) ?? "no error message"})`,
    );
  if (!type.startsWith("text/") || type === "text/event-stream")
    return fail(`the backend answered ${type || "no content type"}, not a ${format} transcript`);
  if (text.trim() === "") return fail("the backend answered an empty transcript");
  return { pieces: [], delivered: true, usage: undefined, error: undefined };
}

function readOptionalText(fields: Record<string, unknown>, field: string): void {
  const value = fields[field];
  if (value !== undefined && (typeof value !== "string" || value.length === 0))
    throw invalidField(field, "must be a non-empty string");
}

/**
 * `POST /v1/audio/transcriptions`: an audio file, sent as multipart/form-data, answered whole with its
 * transcript, never streamed. Charged `input_audio_seconds`: the file's duration read from its own
 * bytes (WAV, whose bytes prove its length), rounded up to whole seconds, at most two hours in a file
 * of at most 25 MB, known before the request runs; plus the fee. The backend's own count of seconds is
 * never what is charged. Only a 2xx non-empty transcript in the asked format is charged and forwarded.
 */
export const transcriptions: RouteAdapter = {
  kind: "transcription",
  path: "/audio/transcriptions",
  canStream: false,
  outputTokens: false,
  meters: ["input_audio_seconds"],
  promptField: "file",
  chunkObject: "transcript.text",
  emptyChunkChoice: {},
  readForm: readTranscriptionForm,
  encodeBody: encodeTranscriptionForm,

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/audio/transcriptions");
    const file = fields.file;
    if (!isAudioUpload(file) || file.bytes.byteLength === 0)
      throw invalidField("file", "must be a non-empty audio file, sent as multipart/form-data");
    if (file.seconds === undefined)
      throw invalidField(
        "file",
        `is not audio whose length this gateway can prove from the file (a WAV that holds no more audio than its header states): send ${AUDIO_DURATION_FORMATS}`,
      );
    if (file.seconds > MAX_AUDIO_SECONDS)
      throw invalidField(
        "file",
        `holds ${file.seconds} seconds of audio; at most ${MAX_AUDIO_SECONDS} are transcribed in one request: split it`,
      );
    if (
      fields.response_format !== undefined &&
      !(RESPONSE_FORMATS as readonly unknown[]).includes(fields.response_format)
    )
      throw invalidField("response_format", `must be one of ${RESPONSE_FORMATS.join(", ")}`);
    readOptionalText(fields, "language");
    readOptionalText(fields, "prompt");
    if (fields.temperature !== undefined) {
      const temperature = typeof fields.temperature === "string" ? Number(fields.temperature) : Number.NaN;
      if (fields.temperature === "" || !(temperature >= 0 && temperature <= 1))
        throw invalidField("temperature", "must be a number from 0 to 1");
    }
    const granularities = fields[GRANULARITIES];
    if (granularities !== undefined) {
      if (
        !Array.isArray(granularities) ||
        !granularities.every((item) => item === "word" || item === "segment")
      )
        throw invalidField(GRANULARITIES, 'must be "word" or "segment"');
    }
    if (fields.stream !== undefined && fields.stream !== "false")
      throw invalidField(
        "stream",
        "must be false: this gateway answers a transcript whole, checked before it is forwarded",
      );
    return wholeAnswerRequest(fields, { inputAudioSeconds: file.seconds });
  },

  prompt(request) {
    const { prompt } = request.fields;
    return { kind: "embedding", body: { input: typeof prompt === "string" ? prompt : "" } };
  },

  backendBody(request, model: ModelConfig) {
    return { ...request.fields, model: model.backend.model ?? model.id };
  },

  // A transcript is read whole: an SSE stream or a bare JSON reading is not checked here.
  readChunk: () => fail("the backend streamed events; a transcript is answered whole"),
  readAnswer: () => fail("the transcription route reads its answer as bytes"),
  readBytes: readTranscript,
};
