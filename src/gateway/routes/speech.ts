import { countCharacters } from "../../pricing/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import type { OutputReading, RouteAdapter } from "./RouteAdapter.js";
import { errorOf } from "./readChoices.js";
import { invalidField, pickAllowedFields, wholeAnswerRequest } from "./requestFields.js";

// OpenAI's text-to-speech API: `input` read aloud in `voice`, answered as audio bytes in
// `response_format`, priced per character of `input` (tts-1: $15 / 1M characters).

const ALLOWED = new Set([
  "model",
  "input",
  "voice",
  "response_format",
  "speed",
  "instructions",
  "stream_format",
]);
const IGNORED = new Set<string>();

/** The most characters (Unicode code points) of `input` one request may hold: OpenAI's limit. */
export const MAX_SPEECH_INPUT_CHARACTERS = 4096;

/** The audio formats OpenAI answers in. */
const RESPONSE_FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"] as const;

const fail = (error: string): OutputReading => ({ pieces: [], delivered: false, usage: undefined, error });

/** The media type of a content type header, lowercased, without its parameters. */
const mediaType = (contentType: string) => contentType.split(";")[0]?.trim().toLowerCase() ?? "";

/** Content types of audio besides `audio/*`: raw bytes (PCM, as some backends label it) and Ogg (Opus). */
const AUDIO_TYPES = new Set(["application/octet-stream", "application/ogg"]);

/** The body read as JSON, when it is JSON (an error), whatever its content type says; undefined for audio. */
function jsonBody(bytes: Uint8Array): { json: unknown } | undefined {
  // No audio format begins with `{` or `[` (MP3, WAV, Ogg, FLAC, AAC open with their own magic bytes),
  // and raw PCM that happens to would not parse as a whole.
  const first = bytes.find((byte) => byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09);
  if (first !== 0x7b && first !== 0x5b) return undefined;
  try {
    return { json: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) };
  } catch {
    return undefined;
  }
}

/**
 * Audio bytes the buyer can use: a non-empty body whose content type is audio (`audio/*`, Ogg, or
 * `application/octet-stream`, as some backends label raw PCM) and that is not JSON. A JSON body is the
 * backend's error, whatever its status and whatever type it is labelled.
 */
function readAudio(bytes: Uint8Array, contentType: string): OutputReading {
  const type = mediaType(contentType);
  const json = jsonBody(bytes);
  if (json !== undefined || type === "application/json" || type.endsWith("+json"))
    return fail(`the backend answered JSON, not audio (${errorOf(json?.json) ?? "no error message"})`);
  if (!type.startsWith("audio/") && !AUDIO_TYPES.has(type))
    return fail(`the backend answered ${type === "" ? "no content type" : type}, not audio`);
  if (bytes.byteLength === 0) return fail("the backend answered an empty body, no audio");
  return { pieces: [], delivered: true, usage: undefined, error: undefined };
}

/** The longest voice name or id taken: OpenAI's are a few characters, custom voice ids a few dozen. */
const MAX_VOICE_CHARACTERS = 256;

function readVoice(voice: unknown): void {
  const id =
    typeof voice === "object" && voice !== null && !Array.isArray(voice) && Object.keys(voice).length === 1
      ? (voice as { id?: unknown }).id
      : voice;
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_VOICE_CHARACTERS)
    throw invalidField(
      "voice",
      `must be a voice name ("alloy", …) or { "id": "…" }, of at most ${MAX_VOICE_CHARACTERS} characters`,
    );
}

function readText(value: unknown, field: string, maxCharacters: number): number {
  if (typeof value !== "string" || value.length === 0)
    throw invalidField(field, "must be a non-empty string");
  const characters = countCharacters(value);
  if (characters > maxCharacters)
    throw invalidField(
      field,
      `may hold at most ${maxCharacters} characters (Unicode code points); this one holds ${characters}: split the text into several requests`,
    );
  return characters;
}

/**
 * `POST /v1/audio/speech`: `input` read aloud, answered whole as audio bytes, never streamed. Charged
 * `input_characters` (the Unicode code points of `input` and of `instructions`, each at most 4096), known
 * exactly from the request, plus the fee; both are also the prompt, for a model priced by input tokens.
 * `speed` is not priced. Only a 2xx answer of non-empty audio (`audio/*`, Ogg, `application/octet-stream`)
 * that is not JSON is charged and forwarded; an empty body, a JSON error, another content type or a body
 * cut short is neither.
 */
export const speech: RouteAdapter = {
  kind: "speech",
  path: "/audio/speech",
  canStream: false,
  outputTokens: false,
  meters: ["input_characters"],
  promptField: "input",
  chunkObject: "audio.speech",
  emptyChunkChoice: {},

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/audio/speech");
    const inputCharacters = readText(fields.input, "input", MAX_SPEECH_INPUT_CHARACTERS);
    readVoice(fields.voice);
    if (
      fields.response_format !== undefined &&
      !(RESPONSE_FORMATS as readonly unknown[]).includes(fields.response_format)
    )
      throw invalidField("response_format", `must be one of ${RESPONSE_FORMATS.join(", ")}`);
    if (fields.speed !== undefined) {
      const speed = fields.speed;
      if (typeof speed !== "number" || !(speed >= 0.25 && speed <= 4))
        throw invalidField("speed", "must be a number from 0.25 to 4.0");
    }
    // The model reads its instructions as it reads the input: they are characters of the request too.
    const instructionCharacters =
      fields.instructions === undefined
        ? 0
        : readText(fields.instructions, "instructions", MAX_SPEECH_INPUT_CHARACTERS);
    if (fields.stream_format !== undefined && fields.stream_format !== "audio")
      throw invalidField(
        "stream_format",
        'must be "audio": this gateway answers speech whole, as audio bytes, checked before they are forwarded',
      );
    return wholeAnswerRequest(fields, { inputCharacters: inputCharacters + instructionCharacters });
  },

  prompt(request) {
    const { input, instructions } = request.fields;
    return { kind: "embedding", body: { input: instructions === undefined ? input : [input, instructions] } };
  },

  backendBody(request, model: ModelConfig) {
    return { ...request.fields, model: model.backend.model ?? model.id };
  },

  // Audio is bytes: an SSE stream or a JSON answer is not audio, and neither is charged.
  readChunk: () => fail("the backend streamed events; speech is answered whole, as audio bytes"),
  readAnswer: (json) => fail(`the backend answered JSON, not audio (${errorOf(json) ?? "no error message"})`),
  readBytes: readAudio,
};
