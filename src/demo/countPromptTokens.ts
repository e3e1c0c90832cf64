import { type GenerationRequest, messageText } from "./openAiRequests.js";

// OpenAI's own rule for chat prompts: every message costs its content, its role and 3 tokens of
// framing (plus 1 for a name), and the reply is primed with 3 more.
// https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken
const tokensPerMessage = 3;
const tokensPerName = 1;
const replyPrimingTokens = 3;

/**
 * Prompt tokens of a generation request as a real server counts them: the chat template's framing
 * included for chat, the prompt text alone for legacy completions.
 */
export function countPromptTokens(request: GenerationRequest, countTokens: (text: string) => number): number {
  if (request.endpoint === "completion") {
    const prompts = typeof request.body.prompt === "string" ? [request.body.prompt] : request.body.prompt;
    return prompts.reduce((sum, prompt) => sum + countTokens(prompt), 0);
  }
  let total = replyPrimingTokens;
  for (const message of request.body.messages) {
    total += tokensPerMessage + countTokens(message.role) + countTokens(messageText(message.content));
    if (message.name !== undefined) total += tokensPerName + countTokens(message.name);
  }
  return total;
}
