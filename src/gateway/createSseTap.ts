import type { OutputMeter } from "./OutputMeter.js";
import type { RouteAdapter } from "./routes/index.js";
import { type ServerSentEvent, SseDecoder } from "./SseDecoder.js";
import { cutChoicesChunk } from "./truncateAnswer.js";

/** Why a tapped stream stopped before the backend finished it. */
export type TapStop = "limit" | "backend_error";

export type CreateSseTapParameters = {
  route: RouteAdapter;
  /** Counts and limits the forwarded output. */
  meter: OutputMeter;
  /** Called once when the tap stops forwarding (output limit reached, or the backend sent an error). */
  onStop(reason: TapStop, message: string): void;
};

/**
 * Reads a backend's OpenAI-style SSE stream event by event and says what to forward: JSON
 * chunks within the authorized output, in the route's shape. Malformed lines, named events and
 * the backend's usage chunk are not forwarded; an error event or a chunk past the output limit
 * stops the tap. The backend's `[DONE]` is held back: the receipt comes first, after settlement.
 */
export type SseTap = {
  /** Feeds backend text; returns the SSE text to forward now (may be empty). */
  push(text: string): string;
  /** The backend's stream ended: its last event, if no blank line closed it, is read; returns what to forward. */
  end(): string;
  /** The backend's last reported usage object, unparsed. */
  readonly reportedUsage: unknown;
  /** The backend's stream id, for the receipt event. */
  readonly streamId: string | undefined;
  readonly stopped: TapStop | undefined;
  readonly stopMessage: string | undefined;
};

/** Creates a tap; see `SseTap`. */
export function createSseTap({ route, meter, onStop }: CreateSseTapParameters): SseTap {
  const decoder = new SseDecoder();
  const readChunk = route.streamReader?.() ?? route.readChunk;
  let reportedUsage: unknown;
  let streamId: string | undefined;
  let stopped: TapStop | undefined;
  let stopMessage: string | undefined;
  const stop = (reason: TapStop, message: string) => {
    stopped = reason;
    stopMessage = message;
    onStop(reason, message);
  };
  /**
   * The chunk cut to what each choice may still receive, once the meter took it; undefined when
   * nothing of it fits or it cannot be cut. A route read against earlier chunks is not cut: reading
   * the cut copy would count it twice.
   */
  const cutToLimit = (chunk: Record<string, unknown>): Record<string, unknown> | undefined => {
    if (route.streamReader) return undefined;
    const cut = (route.cutChunk ?? cutChoicesChunk)(chunk, (choice) => meter.roomFor(choice), meter);
    if (cut === undefined) return undefined;
    const reading = route.readChunk(cut);
    if (reading.pieces.length === 0 || !meter.accept(reading)) return undefined;
    return cut;
  };
  const forward = (events: Iterable<ServerSentEvent>): string => {
    let out = "";
    for (const event of events) {
      if (stopped) break;
      if (event.data === "[DONE]") continue;
      if (event.event !== "" && event.event !== "message" && !route.namedEvents) continue;
      let json: unknown;
      try {
        json = JSON.parse(event.data);
      } catch {
        continue;
      }
      if (typeof json !== "object" || json === null || Array.isArray(json)) continue;
      const reading = readChunk(json);
      // Some APIs report usage in parts (Anthropic: the prompt at the start, the output at the end).
      if (typeof reading.usage === "object" && reading.usage !== null)
        reportedUsage =
          typeof reportedUsage === "object" && reportedUsage !== null
            ? { ...reportedUsage, ...reading.usage }
            : reading.usage;
      if (reading.error !== undefined && !reading.delivered) {
        stop("backend_error", reading.error);
        break;
      }
      // A named event goes out under the type it was metered as: a client dispatches on the name (the
      // Anthropic SDK skips `ping` and throws on `error`), so it reads exactly what is charged.
      const type = (json as { type?: unknown }).type;
      const eventName = typeof type === "string" && /^[\w.-]+$/.test(type) ? type : event.event;
      const name = route.namedEvents && eventName !== "" ? `event: ${eventName}\n` : "";
      if (!meter.accept(reading)) {
        // What still fits of the chunk goes out (a backend may send many tokens at once), then the stream stops.
        // A chunk with a choice nobody asked for is not cut: it stops the stream whole.
        const cut = reading.pieces.every((piece) => meter.asked(piece.choice))
          ? cutToLimit(json as Record<string, unknown>)
          : undefined;
        if (cut !== undefined) {
          if (streamId === undefined && typeof cut.id === "string") streamId = cut.id;
          out += `${name}data: ${JSON.stringify(cut)}\n\n`;
        }
        stop("limit", "the backend went past the authorized output");
        break;
      }
      // A chunk without choices is the backend's usage chunk: the receipt carries the charged usage instead.
      if (!(reading.forward ?? reading.delivered)) continue;
      const id = (json as { id?: unknown }).id;
      if (streamId === undefined && typeof id === "string") streamId = id;
      out += `${name}data: ${event.data.replaceAll("\n", "\ndata: ")}\n\n`;
    }
    return out;
  };
  return {
    push(text) {
      return forward(decoder.push(text));
    },
    end() {
      return forward(decoder.end());
    },
    get reportedUsage() {
      return reportedUsage;
    },
    get streamId() {
      return streamId;
    },
    get stopped() {
      return stopped;
    },
    get stopMessage() {
      return stopMessage;
    },
  };
}
