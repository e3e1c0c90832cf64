import type { OutputPiece, OutputReading } from "./RouteAdapter.js";

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The error message of a backend answer or event that carries `error` instead of output. */
export function errorOf(json: unknown): string | undefined {
  if (!isObject(json) || json.error === undefined || json.error === null) return undefined;
  const error = json.error;
  if (typeof error === "string") return error;
  if (isObject(error) && typeof error.message === "string") return error.message;
  return "the backend reported an error";
}

/**
 * A stream chunk of an API answered whole (embeddings, moderations), read as an error: such an answer is
 * checked for every input's result before any of it is forwarded (`missingResults`), which a stream,
 * forwarded as it comes, cannot be. Nothing of it reaches the buyer, and nothing is charged.
 */
export function refuseStreamedAnswer(api: string): () => OutputReading {
  const error = `the backend streamed ${api}, which are answered whole (every input's result, checked before it is forwarded)`;
  return () => ({ pieces: [], delivered: false, usage: undefined, error });
}

/** Keys whose strings are labels, not generated text. */
const LABEL_KEYS = new Set(["role", "id", "type", "index", "finish_reason"]);

/**
 * Billed text of one chat message or delta: every string the model generated in it (content,
 * refusal, reasoning, function, custom and future tool-call shapes), skipping labels such as
 * `role`, `id` and `type`. Read generically, so a new output shape cannot slip past the meter.
 */
function messageText(message: unknown): string {
  if (!isObject(message)) return "";
  let text = "";
  const pending: unknown[] = [message];
  while (pending.length > 0) {
    const node = pending.pop();
    if (typeof node === "string") text += node;
    else if (Array.isArray(node)) for (let i = node.length - 1; i >= 0; i--) pending.push(node[i]);
    else if (isObject(node)) {
      const entries = Object.entries(node).filter(([key]) => !LABEL_KEYS.has(key));
      for (let i = entries.length - 1; i >= 0; i--) pending.push(entries[i]![1]);
    }
  }
  return text;
}

/** Keys of a chat message or delta that hold the model's reasoning shown as it thinks, not its answer. */
const REASONING_KEYS = new Set(["reasoning", "reasoning_content", "reasoning_details"]);

/** A message or delta whose reasoning is summarized (an OpenRouter `reasoning_details` entry of a summary type). */
function summarizesReasoning(message: unknown): boolean {
  const details = isObject(message) ? message.reasoning_details : undefined;
  return (
    Array.isArray(details) &&
    details.some(
      (detail) => isObject(detail) && typeof detail.type === "string" && detail.type.includes("summary"),
    )
  );
}

/**
 * The reasoning of a message or delta that is the model's own in full: DeepSeek's and vLLM's
 * `reasoning_content` always; OpenRouter's `reasoning` and `reasoning_details` unless they summarize it.
 */
function fullReasoningText(message: unknown): string {
  if (!isObject(message)) return "";
  const summarized = summarizesReasoning(message);
  return messageText(
    Object.fromEntries(
      Object.entries(message).filter(
        ([key]) => REASONING_KEYS.has(key) && (!summarized || key === "reasoning_content"),
      ),
    ),
  );
}

/** A message or delta without its reasoning. */
function answerPart(message: unknown): unknown {
  if (!isObject(message)) return message;
  return Object.fromEntries(Object.entries(message).filter(([key]) => !REASONING_KEYS.has(key)));
}

/**
 * Output of an OpenAI chat or completions answer or chunk: one piece per choice (`message`,
 * `delta` or `text`), the usage object, and an error when the backend sent one. One reader for
 * streamed and whole answers, so both are metered alike.
 */
export function readChoices(json: unknown): OutputReading {
  const error = errorOf(json);
  if (!isObject(json))
    return { pieces: [], delivered: false, usage: undefined, error: error ?? "not a JSON object" };
  const pieces: OutputPiece[] = [];
  let delivered = false;
  let answered = false;
  const reasoningInFull: OutputPiece[] = [];
  const choices = Array.isArray(json.choices) ? json.choices : [];
  choices.forEach((choice, position) => {
    if (!isObject(choice)) return;
    delivered = true;
    const index =
      Number.isSafeInteger(choice.index) && (choice.index as number) >= 0
        ? (choice.index as number)
        : position;
    const plain = typeof choice.text === "string" ? choice.text : "";
    const text = plain + messageText(choice.message) + messageText(choice.delta);
    if (text.length > 0) pieces.push({ choice: index, text });
    if (plain + messageText(answerPart(choice.message)) + messageText(answerPart(choice.delta)) !== "")
      answered = true;
    const reasoning = fullReasoningText(choice.message) + fullReasoningText(choice.delta);
    if (reasoning.length > 0) reasoningInFull.push({ choice: index, text: reasoning });
  });
  return {
    pieces,
    delivered,
    usage: json.usage,
    error,
    ...(pieces.length > 0 && !answered ? { reasoning: true } : {}),
    ...(reasoningInFull.length > 0 ? { reasoningInFull } : {}),
  };
}
