/** What cutting an answer needs of the output meter: the allowance per choice and a token count. */
export type AnswerMeter = {
  readonly allowancePerChoice: number;
  /** Images that may still be forwarded. */
  readonly imageRoom?: number;
  tokensOf(text: string): number;
};

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The longest prefix of `text` that counts at most `maxTokens` (binary search on its length). */
export function cutText(text: string, maxTokens: number, meter: AnswerMeter): string {
  if (maxTokens <= 0) return "";
  // Tokens rarely span more than 16 characters: searching no further keeps the cut cheap.
  let low = 0;
  let high = Math.min(text.length, maxTokens * 16);
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (meter.tokensOf(text.slice(0, middle)) <= maxTokens) low = middle;
    else high = middle - 1;
  }
  return text.slice(0, low);
}

/**
 * A copy of a whole chat or completions answer cut to the authorized output: choices past the
 * `choices` asked for are dropped, and each choice's text (`message.content` or `text`) is cut to
 * the per-choice allowance with `finish_reason: "length"` and no `logprobs`. Undefined when the answer is not in a
 * shape that can be cut.
 */
export function truncateAnswer(
  answer: Record<string, unknown>,
  choices: number,
  meter: AnswerMeter,
): Record<string, unknown> | undefined {
  if (!Array.isArray(answer.choices)) return undefined;
  const allowance = meter.allowancePerChoice;
  const kept: unknown[] = [];
  for (const [position, choice] of answer.choices.entries()) {
    if (!isObject(choice)) continue;
    const index = typeof choice.index === "number" ? choice.index : position;
    if (index >= Math.max(choices, 1)) continue;
    const copy: Record<string, unknown> = { ...choice };
    // A cut choice's logprobs would show the tokens cut off: they go with them, as in a stream.
    if (typeof copy.text === "string" && meter.tokensOf(copy.text) > allowance) {
      copy.text = cutText(copy.text, allowance, meter);
      copy.finish_reason = "length";
      copy.logprobs = null;
    }
    if (isObject(copy.message) && typeof copy.message.content === "string") {
      const content = copy.message.content;
      if (meter.tokensOf(content) > allowance) {
        copy.message = { ...copy.message, content: cutText(content, allowance, meter) };
        copy.finish_reason = "length";
        copy.logprobs = null;
      }
    }
    kept.push(copy);
  }
  return { ...answer, choices: kept };
}

/**
 * A copy of a chat or completions stream chunk whose text (`delta.content` or `text`) is cut to what
 * each choice may still receive, marked as stopped at the limit; undefined when it has no such text.
 */
export function cutChoicesChunk(
  chunk: Record<string, unknown>,
  roomFor: (choice: number) => number,
  meter: AnswerMeter,
): Record<string, unknown> | undefined {
  if (!Array.isArray(chunk.choices)) return undefined;
  let cut = false;
  const choices = chunk.choices.map((choice, position) => {
    if (!isObject(choice)) return choice;
    // The choice's index as the meter reads it: a non-negative whole number, else its position.
    const index =
      Number.isSafeInteger(choice.index) && (choice.index as number) >= 0
        ? (choice.index as number)
        : position;
    const room = roomFor(index);
    // A cut choice's logprobs would show the tokens cut off: they go with them.
    const stopped = { logprobs: null, finish_reason: "length" };
    if (typeof choice.text === "string") {
      const text = cutText(choice.text, room, meter);
      if (text === choice.text) return choice;
      cut = true;
      return { ...choice, text, ...stopped };
    }
    if (isObject(choice.delta) && typeof choice.delta.content === "string") {
      const content = cutText(choice.delta.content, room, meter);
      if (content === choice.delta.content) return choice;
      cut = true;
      return { ...choice, delta: { ...choice.delta, content }, ...stopped };
    }
    return choice;
  });
  return cut ? { ...chunk, choices } : undefined;
}

export type CutBlocksParameters<Block> = {
  /** Everything the meter counts as output in one block. */
  textOf: (block: Block) => string;
  /** The block with its text cut to `maxTokens`, or undefined when it cannot be cut (a tool call). */
  cut: (block: Block, maxTokens: number) => Block | undefined;
};

/**
 * The blocks of a one-choice answer (Messages `content`, Responses `output`) that fit the
 * allowance: whole blocks while they fit, then the first that does not, cut (or dropped when it
 * cannot be cut), and nothing after it. `cut` is false when every block already fits.
 */
export function cutBlocks<Block>(
  blocks: readonly Block[],
  meter: AnswerMeter,
  { textOf, cut }: CutBlocksParameters<Block>,
): { blocks: Block[]; cut: boolean } {
  let remaining = meter.allowancePerChoice;
  const kept: Block[] = [];
  for (const block of blocks) {
    const tokens = meter.tokensOf(textOf(block));
    if (tokens <= remaining) {
      kept.push(block);
      remaining -= tokens;
      continue;
    }
    const shortened = remaining > 0 ? cut(block, remaining) : undefined;
    if (shortened !== undefined) kept.push(shortened);
    return { blocks: kept, cut: true };
  }
  return { blocks: kept, cut: false };
}
