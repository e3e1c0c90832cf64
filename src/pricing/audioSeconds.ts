import { parseBuffer } from "music-metadata";

/** The largest audio file one transcription may send: OpenAI's limit, 25 MB. */
export const MAX_AUDIO_FILE_BYTES = 25 * 1024 * 1024;

/** The longest audio one transcription may be charged for, in seconds: two hours. */
export const MAX_AUDIO_SECONDS = 2 * 60 * 60;

/** The audio formats whose duration is read from the file itself, as a person would name them. */
export const AUDIO_DURATION_FORMATS = "mp3, wav, flac, ogg/opus, m4a/mp4, webm";

/**
 * The duration of an audio file in whole seconds, rounded up (`input_audio_seconds`), read from the
 * file's own bytes with `music-metadata` (mp3, wav, flac, ogg/opus, m4a, webm); undefined when the
 * bytes are no audio it can time. A header that claims more audio than the file holds is not believed:
 * the duration is what the bytes hold.
 * @example
 * await audioSeconds(wavBytes, "audio/wav") // 3 for a WAV of 2.5 s
 */
export async function audioSeconds(bytes: Uint8Array, mediaType?: string): Promise<number | undefined> {
  let duration: number | undefined;
  try {
    const metadata = await parseBuffer(
      bytes,
      mediaType ? { mimeType: mediaType, size: bytes.byteLength } : { size: bytes.byteLength },
      { duration: true, skipCovers: true },
    );
    duration = metadata.format.duration;
  } catch {
    return undefined;
  }
  if (duration === undefined || !Number.isFinite(duration) || duration <= 0) return undefined;
  return Math.ceil(duration);
}
