/** One dispatched server-sent event. `data` joins multiple `data:` lines with "\n". */
export type ServerSentEvent = {
  event: string;
  data: string;
  id: string | undefined;
};

/**
 * Incremental parser for `text/event-stream`, fed text as it arrives from the network.
 * Implements the WHATWG event-stream interpretation: lines end in CRLF, LF or CR (a CRLF split
 * across two pushes is one line end), `:` starts a comment, a blank line dispatches, an event
 * without data is dropped.
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 *
 * @example
 * const decoder = new SseDecoder();
 * for (const event of decoder.push(text)) handle(event);
 * for (const event of decoder.end()) handle(event);
 */
export class SseDecoder {
  #buffer = "";
  /** The previous push ended in "\r": a "\n" starting the next push belongs to that line end. */
  #pendingCarriageReturn = false;
  #started = false;
  #dataLines: string[] = [];
  #eventType = "";
  #lastEventId: string | undefined;

  /** Feeds decoded text; returns the events completed by it. */
  push(text: string): ServerSentEvent[] {
    let input = text;
    if (!this.#started && input.length > 0) {
      this.#started = true;
      if (input.charCodeAt(0) === 0xfeff) input = input.slice(1);
    }
    if (input.length === 0) return [];
    if (this.#pendingCarriageReturn && input.startsWith("\n")) input = input.slice(1);
    this.#pendingCarriageReturn = false;

    this.#buffer += input;
    const events: ServerSentEvent[] = [];
    let lineStart = 0;
    for (let index = 0; index < this.#buffer.length; index++) {
      const char = this.#buffer.charCodeAt(index);
      if (char !== 0x0a && char !== 0x0d) continue;
      const event = this.#processLine(this.#buffer.slice(lineStart, index));
      if (event !== undefined) events.push(event);
      if (char === 0x0d) {
        if (index + 1 === this.#buffer.length) this.#pendingCarriageReturn = true;
        else if (this.#buffer.charCodeAt(index + 1) === 0x0a) index++;
      }
      lineStart = index + 1;
    }
    this.#buffer = this.#buffer.slice(lineStart);
    return events;
  }

  /**
   * Ends the stream. The spec drops an event that was not closed by a blank line; we dispatch it
   * instead, because some backends end with `data: [DONE]\n` and close.
   */
  end(): ServerSentEvent[] {
    const events: ServerSentEvent[] = [];
    if (this.#buffer.length > 0) {
      const event = this.#processLine(this.#buffer);
      if (event !== undefined) events.push(event);
      this.#buffer = "";
    }
    const last = this.#dispatch();
    if (last !== undefined) events.push(last);
    return events;
  }

  #processLine(line: string): ServerSentEvent | undefined {
    if (line.length === 0) return this.#dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.#dataLines.push(value);
        break;
      case "event":
        this.#eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) this.#lastEventId = value;
        break;
      default:
        // `retry` and unknown fields mean nothing to a one-shot inference stream.
        break;
    }
    return undefined;
  }

  #dispatch(): ServerSentEvent | undefined {
    const dataLines = this.#dataLines;
    const eventType = this.#eventType;
    this.#dataLines = [];
    this.#eventType = "";
    if (dataLines.length === 0) return undefined;
    return {
      event: eventType === "" ? "message" : eventType,
      data: dataLines.join("\n"),
      id: this.#lastEventId,
    };
  }
}
