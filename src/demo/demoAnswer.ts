import { hashText } from "./hashText.js";

/** What the demo model says: a few paragraphs of plain English, about what is happening as it streams. */
export const demoParagraphs: readonly string[] = [
  "This answer comes from the Tollgate demo model, a small text generator that runs inside the gateway. " +
    "It does not understand your question, but it streams its reply the way a real model would: one token " +
    "at a time, at a steady pace, with honest usage numbers at the end. Every token you see here is counted, " +
    "priced and paid for, exactly as it would be with a real backend behind the gateway.",
  "Before the first word appeared, your client signed an authorization for a maximum amount. The gateway " +
    "priced the request from the length of your prompt and the largest answer you allowed, checked the " +
    "signature with the facilitator, and only then asked the model to start. Nothing has moved yet: the " +
    "authorization is a promise to pay up to that amount, not a payment.",
  "When the last token is written, the gateway counts what was actually generated and settles only that. " +
    "A short answer costs less than a long one, and an answer that never started costs nothing at all. " +
    "The receipt arrives as the final event of this stream, after the text and before the end marker, so " +
    "your client can compare the amount it reserved with the amount it paid.",
  "A model host can put the same gateway in front of any server that speaks the OpenAI protocol, such as " +
    "vLLM, llama.cpp or Ollama. The host sets a price per million input tokens and per million output " +
    "tokens, and the gateway does the rest: it asks the backend for usage, falls back to its own tokenizer " +
    "when the backend gives none, and never charges more than the buyer authorized.",
  "Agents are the buyers this was built for. An agent does not want an account, an invoice or a monthly " +
    "plan; it wants to pay for one answer, right now, within limits its owner has set. A spending policy " +
    "caps each call and each day, and every payment leaves a receipt that can be checked against the chain.",
  "If you stop reading halfway, the gateway notices, stops the model, and charges only for the tokens that " +
    "were produced before you left. If the model fails before it says anything, you pay nothing. If the " +
    "settlement itself fails after you were served, the debt is recorded and settled later, never twice.",
];

/**
 * The demo model's answer to `prompt`: two consecutive paragraphs, starting at one chosen by
 * hashing the prompt, so the same prompt always gets the same answer.
 */
export function demoAnswerText(prompt: string): string {
  const first = hashText(prompt) % demoParagraphs.length;
  return [first, first + 1].map((index) => demoParagraphs[index % demoParagraphs.length]).join("\n\n");
}
