import { z } from "zod";

// OpenAI's text-to-speech API as a fake backend answers it: a short tone per character, as WAV.

/** POST /v1/audio/speech: the fields the fake acts on, the rest kept. */
export const speechRequestSchema = z.looseObject({
  model: z.string().optional(),
  input: z.string().min(1),
  voice: z.union([z.string().min(1), z.looseObject({ id: z.string() })]),
  response_format: z.enum(["mp3", "opus", "aac", "flac", "wav", "pcm"]).optional(),
  speed: z.number().min(0.25).max(4).optional(),
});
export type SpeechRequest = z.infer<typeof speechRequestSchema>;

const SAMPLE_RATE = 8_000;
/** Samples per character read: 20 ms at 8 kHz. */
const SAMPLES_PER_CHARACTER = 160;

/**
 * 16-bit mono samples at 8 kHz: 20 ms per character (shorter at a higher `speed`), each character a
 * tone of its own pitch, so the same text always sounds the same.
 */
function speechSamples(input: string, speed: number): Int16Array {
  const characters = [...input];
  const perCharacter = Math.max(1, Math.round(SAMPLES_PER_CHARACTER / speed));
  const samples = new Int16Array(characters.length * perCharacter);
  characters.forEach((character, index) => {
    const code = character.codePointAt(0) ?? 0;
    const silent = /\s/u.test(character);
    const frequency = 220 + (code % 48) * 20;
    for (let i = 0; i < perCharacter; i++) {
      const t = i / SAMPLE_RATE;
      samples[index * perCharacter + i] = silent
        ? 0
        : Math.round(8_000 * Math.sin(2 * Math.PI * frequency * t));
    }
  });
  return samples;
}

/** A RIFF/WAVE file of 16-bit PCM mono samples. */
function wavOf(samples: Int16Array): Buffer {
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "ascii");
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVE", 8, "ascii");
  header.write("fmt ", 12, "ascii");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(SAMPLE_RATE, 24);
  header.writeUInt32LE(SAMPLE_RATE * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "ascii");
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

/**
 * The audio of a speech request and its content type: raw 16-bit samples (`audio/pcm`) for
 * `response_format: "pcm"`, else a small WAV file (`audio/wav`) whatever format was asked for: the
 * demo encodes no mp3, opus, aac or flac.
 */
export function speechAudio(request: SpeechRequest): { body: Buffer; contentType: string } {
  const samples = speechSamples(request.input, request.speed ?? 1);
  if (request.response_format === "pcm")
    return {
      body: Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength),
      contentType: "audio/pcm",
    };
  return { body: wavOf(samples), contentType: "audio/wav" };
}
