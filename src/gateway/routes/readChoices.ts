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

/** Billed text of one chat message or delta: content, refusal, reasoning, tool and function calls. */
function messageText(message: unknown): string {
  if (!isObject(message)) return "";
  let text = "";
  for (const field of ["content", "refusal", "reasoning_content", "reasoning"]) {
    const value = message[field];
    if (typeof value === "string") text += value;
    else if (Array.isArray(value)) {
      for (const part of value) if (isObject(part) && typeof part.text === "string") text += part.text;
    }
  }
  const calls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  for (const call of [...calls, message.function_call]) {
    const fn = isObject(call) ? (isObject(call.function) ? call.function : call) : undefined;
    if (fn && typeof fn.name === "string") text += fn.name;
    if (fn && typeof fn.arguments === "string") text += fn.arguments;
  }
  return text;
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
  const choices = Array.isArray(json.choices) ? json.choices : [];
  choices.forEach((choice, position) => {
    if (!isObject(choice)) return;
    delivered = true;
    const index =
      Number.isSafeInteger(choice.index) && (choice.index as number) >= 0
        ? (choice.index as number)
        : position;
    let text = typeof choice.text === "string" ? choice.text : "";
    text += messageText(choice.message) + messageText(choice.delta);
    if (text.length > 0) pieces.push({ choice: index, text });
  });
  return { pieces, delivered, usage: json.usage, error };
}
