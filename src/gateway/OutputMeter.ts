import type { OutputReading } from "./routes/index.js";

/** Longest text a choice keeps uncounted at its end, waiting for the rest of its word (a run with no space is counted in parts). */
const TAIL_MAX_CHARS = 64;

/** One choice's count: tokens of the text up to its last word boundary, and the text after it. */
type ChoiceCount = { committed: number; tail: string; tokens: number };

const NO_TEXT: ChoiceCount = { committed: 0, tail: "", tokens: 0 };

/**
 * The last place in `text` where a word starts after a space (a space after anything but whitespace):
 * byte-level BPE tokenizers (o200k, cl100k) split text into pieces there before merging, so the
 * tokens of the text are the tokens before it plus the tokens after it. 0 when there is none.
 */
function lastWordBoundary(text: string): number {
  for (let index = text.length - 1; index > 0; index--) {
    if (text.charCodeAt(index) !== 32) continue;
    if (!/\s/.test(text.charAt(index - 1))) return index;
  }
  return 0;
}

export type OutputMeterParameters = {
  /** Tokens of a piece of generated text (the model's tokenizer, or an estimate); linear in its length. */
  countTokens: (text: string) => number;
  /** The output limit per choice that was authorized and sent to the backend. */
  limitPerChoice: number;
  /** Choices the request asked for; a choice index past them is output nobody paid for. */
  choices: number;
  /** The count is the model's own tokenizer (exact) rather than an estimate. */
  exactCount: boolean;
  /** Images the request authorized (`n`); an answer with more is refused like output past the limit. */
  imageLimit?: number | undefined;
};

/**
 * Counts the output the gateway forwards, per choice, as one text (a backend that streams a word in
 * several chunks is counted the word's tokens, not one per chunk), and refuses a piece that would take a
 * choice past its authorized limit: the gateway never delivers more than was paid for, whatever
 * the backend generates. With an estimated count (a model whose tokenizer the gateway does not
 * know) a choice may run `ceil(limit / 10) + 4` tokens past the limit, so that an honest backend
 * is never cut short by the estimate; the charge never exceeds the limit either way.
 */
export class OutputMeter {
  readonly #countTokens: (text: string) => number;
  readonly #choices: number;
  readonly #allowance: number;
  readonly #counted = new Map<number, ChoiceCount>();
  #delivered = false;
  #generated = false;
  #answerBegun = false;
  #hiddenOutput = false;
  #reasoningTokens = 0;
  readonly #limitPerChoice: number;
  readonly #bytes = new Map<number, number>();
  #refused = false;
  readonly #imageLimit: number;
  #images = 0;

  constructor({ countTokens, limitPerChoice, choices, exactCount, imageLimit = 0 }: OutputMeterParameters) {
    this.#countTokens = countTokens;
    this.#imageLimit = imageLimit;
    this.#choices = choices;
    this.#allowance = exactCount ? limitPerChoice : limitPerChoice + Math.ceil(limitPerChoice / 10) + 4;
    this.#limitPerChoice = limitPerChoice;
  }

  /** Tokens one choice may receive before the gateway stops forwarding. */
  get allowancePerChoice(): number {
    return this.#allowance;
  }

  /** The request asked for choice `choice` (its index is below the choices asked for). */
  asked(choice: number): boolean {
    return Number.isInteger(choice) && choice >= 0 && choice < Math.max(this.#choices, 1);
  }

  /** Tokens choice `choice` may still receive (0 for a choice nobody asked for). */
  roomFor(choice: number): number {
    if (choice >= Math.max(this.#choices, 1)) return 0;
    return Math.max(0, this.#allowance - (this.#counted.get(choice)?.tokens ?? 0));
  }

  /** Something was delivered (a choice or a result), even if empty text. */
  get delivered(): boolean {
    return this.#delivered;
  }

  /**
   * The most tokens any byte-level tokenizer can count in what was forwarded: each choice's UTF-8
   * bytes, held to its output limit, summed. Undefined once a piece was refused (the backend went
   * past the limit): its own count then covers output nobody received.
   */
  get byteCeiling(): number | undefined {
    if (this.#refused) return undefined;
    let total = 0;
    for (const bytes of this.#bytes.values()) total += Math.min(bytes, this.#limitPerChoice);
    return total;
  }

  /**
   * Something the model generated was forwarded: text of any kind (content, a refusal, a tool call,
   * reasoning), an image, or a thinking block. A choice, message or response with none of these
   * (empty or null content, a finish reason alone) is nothing.
   */
  get generated(): boolean {
    return this.#generated;
  }

  /**
   * Something of the answer proper was forwarded: generated text other than reasoning shown as the model
   * thinks (`OutputReading.reasoning`), or an image. Reasoning the model did first is then spent.
   */
  get answerBegun(): boolean {
    return this.#answerBegun;
  }

  /** Images forwarded (never above the authorized number). */
  get images(): number {
    return this.#images;
  }

  /** Images that may still be forwarded. */
  get imageRoom(): number {
    return Math.max(0, this.#imageLimit - this.#images);
  }

  /** An accepted reading showed output it holds only in part (a thinking block). */
  get sawHiddenOutput(): boolean {
    return this.#hiddenOutput;
  }

  /**
   * Of `countedTokens`, those forwarded as the model's own reasoning, in full (a reading's
   * `reasoningInFull`, not a summary): what it added to its choice's count, at most its own tokens.
   */
  get reasoningTokens(): number {
    return this.#reasoningTokens;
  }

  /** Output tokens forwarded, summed over choices (each choice's text counted as one). */
  get countedTokens(): number {
    let total = 0;
    for (const count of this.#counted.values()) total += count.tokens;
    return total;
  }

  /**
   * Takes the output of one chunk (or answer) if every piece fits its choice's allowance and
   * records it as delivered; otherwise takes nothing and answers false (stop forwarding).
   */
  accept(reading: OutputReading): boolean {
    const images = reading.units?.images ?? 0;
    if (images > this.imageRoom) {
      this.#refused = true;
      return false;
    }
    const next = new Map<number, ChoiceCount>();
    for (const piece of reading.pieces) {
      if (piece.choice >= Math.max(this.#choices, 1)) {
        this.#refused = true;
        return false;
      }
      const count = this.#extend(
        next.get(piece.choice) ?? this.#counted.get(piece.choice) ?? NO_TEXT,
        piece.text,
      );
      if (count.tokens > this.#allowance) {
        this.#refused = true;
        return false;
      }
      next.set(piece.choice, count);
    }
    for (const piece of reading.pieces)
      this.#bytes.set(piece.choice, (this.#bytes.get(piece.choice) ?? 0) + Buffer.byteLength(piece.text));
    for (const [choice, count] of next) {
      // Reasoning shown in full counts what it added to the choice, at most its own tokens (an answer came with it).
      const reasoning = (reading.reasoningInFull ?? [])
        .filter((piece) => piece.choice === choice)
        .map((piece) => piece.text)
        .join("");
      const added = count.tokens - (this.#counted.get(choice) ?? NO_TEXT).tokens;
      if (reasoning) this.#reasoningTokens += Math.min(added, this.#tokens(reasoning));
      this.#counted.set(choice, count);
    }
    this.#images += images;
    if (reading.delivered) this.#delivered = true;
    if (reading.hiddenOutput) this.#hiddenOutput = true;
    if (images > 0 || reading.hiddenOutput || reading.pieces.some((piece) => piece.text.length > 0))
      this.#generated = true;
    if (images > 0 || (!reading.reasoning && reading.pieces.some((piece) => piece.text.length > 0)))
      this.#answerBegun = true;
    return true;
  }

  /** Tokens a piece would add if accepted (for truncating a whole answer). */
  tokensOf(text: string): number {
    return this.#tokens(text);
  }

  /**
   * A choice's count once `text` is added to it: the text after the choice's last word boundary is
   * counted again with `text`, so the total is the tokens of everything the choice received as one
   * text, at the cost of counting only its last word again.
   */
  #extend(count: ChoiceCount, text: string): ChoiceCount {
    if (text.length === 0) return count;
    const joined = count.tail + text;
    let boundary = lastWordBoundary(joined);
    if (boundary === 0 && joined.length > TAIL_MAX_CHARS) boundary = joined.length;
    const committed = count.committed + (boundary > 0 ? this.#tokens(joined.slice(0, boundary)) : 0);
    const tail = joined.slice(boundary);
    return { committed, tail, tokens: committed + this.#tokens(tail) };
  }

  #tokens(text: string): number {
    return text.length === 0 ? 0 : this.#countTokens(text);
  }
}
