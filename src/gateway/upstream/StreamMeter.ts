import type { ChatCompletionChunk, CompletionChunk, UpstreamUsage } from "./backendSchemas.js";

type ChatDelta = NonNullable<NonNullable<ChatCompletionChunk["choices"]>[number]["delta"]>;

/** Usage to charge for, and where the numbers came from. */
export type MeteredUsage = {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** `backend`: the backend reported it; `tokenizer`: we counted the streamed text ourselves. */
  source: "backend" | "tokenizer";
};

export type StreamMeterParameters = {
  /** Counts the tokens of generated text (the gateway passes its tokenizer). */
  countTokens: (text: string) => number;
};

/**
 * Accumulates what a backend stream generated, so the gateway can charge for it even when the
 * backend reports no usage or the stream is cut short.
 *
 * @example
 * const meter = new StreamMeter({ countTokens });
 * for await (const event of stream) if (event.type === "chunk") meter.add(event.json);
 * const usage = meter.usage({ promptTokens });
 */
export class StreamMeter {
  readonly #countTokens: (text: string) => number;
  readonly #pieces: string[] = [];
  #reportedUsage: UpstreamUsage | undefined;
  #chunkCount = 0;

  constructor(parameters: StreamMeterParameters) {
    this.#countTokens = parameters.countTokens;
  }

  /** Takes one parsed chunk (chat or legacy completion). */
  add(chunk: ChatCompletionChunk | CompletionChunk): void {
    this.#chunkCount++;
    if (chunk.usage !== undefined && chunk.usage !== null) this.#reportedUsage = chunk.usage;
    // A chat choice carries `delta`, a legacy completion choice `text`; both were validated already.
    const choices: ReadonlyArray<{ text?: unknown; delta?: unknown }> = chunk.choices ?? [];
    for (const choice of choices) {
      if (typeof choice.text === "string") this.#collect(choice.text);
      const delta = choice.delta as ChatDelta | null | undefined;
      if (delta !== undefined && delta !== null) {
        // Everything the model generated is billed output: text, refusals, reasoning, tool calls.
        this.#collect(delta.content);
        this.#collect(delta.refusal);
        this.#collect(delta.reasoning_content);
        this.#collect(delta.reasoning);
        this.#collect(delta.function_call?.name);
        this.#collect(delta.function_call?.arguments);
        for (const toolCall of delta.tool_calls ?? []) {
          this.#collect(toolCall.function?.name);
          this.#collect(toolCall.function?.arguments);
        }
      }
    }
  }

  /** All generated text seen so far, in arrival order. */
  get completionText(): string {
    return this.#pieces.join("");
  }

  /** The usage the backend reported (the last one wins), if any. */
  get reportedUsage(): UpstreamUsage | undefined {
    return this.#reportedUsage;
  }

  /** Chunks added so far. */
  get chunkCount(): number {
    return this.#chunkCount;
  }

  /**
   * The usage to charge for: the backend's own numbers when it reported them, otherwise
   * `promptTokens` (the gateway's count) and the tokenizer's count of the generated text.
   */
  usage(parameters: { promptTokens: number }): MeteredUsage {
    const reported = this.#reportedUsage;
    if (reported !== undefined) {
      return {
        prompt_tokens: reported.prompt_tokens,
        completion_tokens: reported.completion_tokens,
        total_tokens: reported.prompt_tokens + reported.completion_tokens,
        source: "backend",
      };
    }
    const text = this.completionText;
    const completionTokens = text.length === 0 ? 0 : this.#countTokens(text);
    return {
      prompt_tokens: parameters.promptTokens,
      completion_tokens: completionTokens,
      total_tokens: parameters.promptTokens + completionTokens,
      source: "tokenizer",
    };
  }

  #collect(text: string | null | undefined): void {
    if (text !== undefined && text !== null && text.length > 0) this.#pieces.push(text);
  }
}
