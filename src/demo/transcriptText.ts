import { z } from "zod";

// OpenAI's speech-to-text API as a fake backend answers it: the same words for the same file.

/** POST /v1/audio/transcriptions: the form's fields the fake acts on (the file as its name, type and size). */
export const transcriptionRequestSchema = z.looseObject({
  model: z.string().optional(),
  file: z.object({ name: z.string(), type: z.string(), size: z.number().int().positive() }),
  response_format: z.enum(["json", "text", "srt", "vtt", "verbose_json"]).optional(),
});
export type TranscriptionRequest = z.infer<typeof transcriptionRequestSchema>;

/**
 * A multipart form's fields as the fake records them (text as strings, a file as its name, type and
 * size), and the bytes of its `file`.
 */
export async function readForm(bytes: Uint8Array<ArrayBuffer>, contentType: string) {
  const form = await new Response(bytes, { headers: { "content-type": contentType } }).formData();
  const fields: Record<string, unknown> = {};
  let audio: Uint8Array | undefined;
  for (const [key, value] of form.entries()) {
    if (typeof value === "string") fields[key] = value;
    else {
      fields[key] = { name: value.name, type: value.type, size: value.size };
      if (key === "file") audio = new Uint8Array(await value.arrayBuffer());
    }
  }
  return { fields, audio };
}

/**
 * The fake's transcript of a file: a sentence naming its size, so the same file always reads the
 * same; as JSON (`{ text }`, with `usage` of `seconds` when given), plain text, SRT or WebVTT.
 */
export function transcriptAnswer(
  request: TranscriptionRequest,
  seconds: number | undefined,
): { contentType: string; body: string } {
  const text = `The demo heard ${request.file.size} bytes of audio.`;
  const format = request.response_format ?? "json";
  if (format === "text") return { contentType: "text/plain; charset=utf-8", body: text };
  const end = `00:00:${String(Math.min(seconds ?? 1, 59)).padStart(2, "0")}`;
  if (format === "srt")
    return { contentType: "text/plain; charset=utf-8", body: `1\n00:00:00,000 --> ${end},000\n${text}\n` };
  if (format === "vtt")
    return {
      contentType: "text/plain; charset=utf-8",
      body: `WEBVTT\n\n00:00:00.000 --> ${end}.000\n${text}\n`,
    };
  const usage = seconds === undefined ? {} : { usage: { type: "duration", seconds } };
  const body =
    format === "verbose_json"
      ? { task: "transcribe", language: "english", duration: seconds ?? 0, text, segments: [], ...usage }
      : { text, ...usage };
  return { contentType: "application/json", body: JSON.stringify(body) };
}
