import { parseBuffer } from "music-metadata";

/** The largest audio file one transcription may send: OpenAI's limit, 25 MB. */
export const MAX_AUDIO_FILE_BYTES = 25 * 1024 * 1024;

/** The longest audio one transcription may be charged for, in seconds: two hours. */
export const MAX_AUDIO_SECONDS = 2 * 60 * 60;

/**
 * The audio formats whose duration is read from the file itself, as a person would name them: WAV,
 * whose length its bytes prove at its constant rate. A compressed format states its length in headers
 * a sender writes (an MP3's Xing frame count, a FLAC's sample total, an Ogg page's granule), which
 * decoders do not hold the audio to: a file could state a second and hold an hour.
 */
export const AUDIO_DURATION_FORMATS = "WAV (convert other audio first, e.g. ffmpeg -i in.mp3 out.wav)";

/** Bytes a WAV may hold beyond its stated audio (its header, a metadata chunk) before they could be audio. */
const WAV_SPARE_SECONDS = 1;

/**
 * The duration of an audio file in whole seconds, rounded up (`input_audio_seconds`), read from the
 * file's own bytes with `music-metadata`; undefined when the bytes are no WAV it can time, or when the
 * file holds more bytes than its stated length accounts for at its rate (more than a second's worth
 * beyond it: audio a decoder might play past the length the header states).
 * @example
 * await audioSeconds(wavBytes, "audio/wav") // 3 for a WAV of 2.5 s
 */
export async function audioSeconds(bytes: Uint8Array, mediaType?: string): Promise<number | undefined> {
  let format: Awaited<ReturnType<typeof parseBuffer>>["format"];
  try {
    const metadata = await parseBuffer(
      bytes,
      mediaType ? { mimeType: mediaType, size: bytes.byteLength } : { size: bytes.byteLength },
      { duration: true, skipCovers: true },
    );
    format = metadata.format;
  } catch {
    return undefined;
  }
  const { container, duration, bitrate } = format;
  if (container !== "WAVE" || duration === undefined || !Number.isFinite(duration) || duration <= 0)
    return undefined;
  // At a constant rate the bytes bound the audio: a header stating less than they hold is not believed.
  if (bitrate === undefined || !(bitrate > 0)) return undefined;
  const held = (bytes.byteLength * 8) / bitrate;
  if (held > duration + WAV_SPARE_SECONDS) return undefined;
  return Math.ceil(duration);
}
