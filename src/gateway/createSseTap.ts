import { SseDecoder } from "./upstream/index.js";

export type CreateSseTapParameters = {
  /** Each parsed JSON chunk, for metering. */
  onChunk(json: unknown): void;
  /** Settles and returns the text that ends the stream (receipt event, then `[DONE]`). */
  finish(ending: "complete" | "backend_error" | "client_gone"): Promise<string>;
};

/**
 * Passes an OpenAI-style SSE stream through event by event while metering it. The backend's
 * `[DONE]` is held back: the receipt must come before it, and only after settlement.
 */
export type SseTap = {
  /** Feeds backend text; returns the SSE text to forward now (may be empty). */
  push(text: string): string;
  /** Ends the stream once; later calls return the same trailer. */
  finish(ending: "complete" | "backend_error" | "client_gone"): Promise<string>;
};

/** Creates a tap; see `SseTap`. */
export function createSseTap({ onChunk, finish }: CreateSseTapParameters): SseTap {
  const decoder = new SseDecoder();
  let trailer: Promise<string> | undefined;
  return {
    push(text) {
      let out = "";
      for (const event of decoder.push(text)) {
        if (event.data === "[DONE]") continue;
        try {
          onChunk(JSON.parse(event.data));
        } catch {
          // Not JSON: forwarded untouched, metered by nothing (usage then comes from the tokenizer).
        }
        out += `${event.event && event.event !== "message" ? `event: ${event.event}\n` : ""}data: ${event.data.replaceAll("\n", "\ndata: ")}\n\n`;
      }
      return out;
    },
    finish(ending) {
      trailer ??= finish(ending);
      return trailer;
    },
  };
}
