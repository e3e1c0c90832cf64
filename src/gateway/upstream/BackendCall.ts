import { isTollgateError, type Logger } from "../../errors/index.js";
import { backendNetworkError, backendTimeoutError } from "./upstreamErrors.js";

const maxExcerptChars = 8192;

/** What every call needs to know about the backend. */
export type BackendEndpoint = {
  /** Base URL including the version path, e.g. `http://127.0.0.1:8000/v1`. */
  baseUrl: string;
  apiKey: string | undefined;
  timeoutMs: number;
  fetch: typeof globalThis.fetch;
  logger: Logger;
};

/**
 * One HTTP call to the backend: links the caller's signal, runs the timeout while we wait on the
 * backend, aborts the request when we give up, and turns whatever went wrong into the right error.
 */
export class BackendCall {
  readonly url: string;
  readonly #endpoint: BackendEndpoint;
  readonly #controller = new AbortController();
  readonly #callerSignal: AbortSignal | undefined;
  readonly #onCallerAbort: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timedOut = false;

  constructor(endpoint: BackendEndpoint, path: string, callerSignal: AbortSignal | undefined) {
    this.#endpoint = endpoint;
    this.url = `${endpoint.baseUrl.replace(/\/+$/, "")}${path}`;
    this.#callerSignal = callerSignal;
    this.#onCallerAbort = () => this.#controller.abort(callerSignal?.reason);
    callerSignal?.throwIfAborted();
    callerSignal?.addEventListener("abort", this.#onCallerAbort, { once: true });
  }

  /** Sends the POST; the response body is still unread. */
  async post(body: unknown, accept: string, details?: () => Record<string, unknown>): Promise<Response> {
    const headers: Record<string, string> = { "content-type": "application/json", accept };
    if (this.#endpoint.apiKey !== undefined) headers.authorization = `Bearer ${this.#endpoint.apiKey}`;
    return this.wait(
      () =>
        this.#endpoint.fetch(this.url, {
          method: "POST",
          headers,
          body: JSON.stringify(body),
          signal: this.#controller.signal,
        }),
      details,
    );
  }

  /** Awaits one step of backend I/O under the timeout; failures come out as Tollgate errors. */
  async wait<T>(step: () => Promise<T>, details?: () => Record<string, unknown>): Promise<T> {
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#controller.abort();
    }, this.#endpoint.timeoutMs);
    try {
      return await step();
    } catch (error) {
      throw this.#mapError(error, details?.());
    } finally {
      clearTimeout(this.#timer);
    }
  }

  /** Reads the start of the body (for error excerpts), then lets go of it. */
  async readExcerpt(response: Response, details?: () => Record<string, unknown>): Promise<string> {
    if (response.body === null) return "";
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = "";
    try {
      while (text.length < maxExcerptChars) {
        const { done, value } = await this.wait(() => reader.read(), details);
        if (done) return text + decoder.decode();
        text += decoder.decode(value, { stream: true });
      }
      return text.slice(0, maxExcerptChars);
    } finally {
      reader.cancel().catch(() => undefined);
    }
  }

  /** Aborts the request: the backend sees its connection close. */
  abort(): void {
    this.#controller.abort();
  }

  /** Unlinks the caller's signal; call once the call is over. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#callerSignal?.removeEventListener("abort", this.#onCallerAbort);
  }

  #mapError(error: unknown, details: Record<string, unknown> | undefined): unknown {
    if (isTollgateError(error)) return error;
    // The caller gave up: hand back its own reason, as fetch does.
    if (this.#callerSignal?.aborted) return this.#callerSignal.reason;
    if (this.#timedOut)
      return backendTimeoutError({ url: this.url, timeoutMs: this.#endpoint.timeoutMs, details });
    return backendNetworkError({ url: this.url, cause: error, details });
  }
}
