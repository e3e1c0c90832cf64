import type { FakeGeneration } from "./fakeServerTypes.js";
import { type GenerationRequest, promptGroups } from "./openAiRequests.js";

/** One generation a request asks for: a choice sent to the client, or a hidden `best_of` candidate. */
export type PlannedChoice = {
  /** The choice's `index` on the wire; -1 for a hidden candidate. */
  index: number;
  /** False for the extra `best_of` candidates: generated, billed, not sent. */
  sent: boolean;
  generation: FakeGeneration;
};

/** Every generation of a request, and the prompt tokens of the whole request. */
export type ChoicePlan = { choices: PlannedChoice[]; promptTokens: number };

/**
 * The choices a request asks for, as OpenAI serves them: `n` per prompt, and for a completion one
 * group per prompt of a prompt array, indexed prompt by prompt (prompt 1's choices follow prompt 0's).
 * `best_of` (completions) generates that many per prompt and sends `n`; usage counts them all.
 */
export function planChoices(
  request: GenerationRequest,
  generate: (request: GenerationRequest) => FakeGeneration,
): ChoicePlan {
  const n = request.body.n ?? 1;
  const generated = request.endpoint === "completion" ? Math.max(n, request.body.best_of ?? n) : n;
  const choices: PlannedChoice[] = [];
  let promptTokens = 0;
  promptGroups(request).forEach((group, groupIndex) => {
    for (let k = 0; k < generated; k++) {
      const generation = generate(group);
      if (k === 0) promptTokens += generation.promptTokens;
      choices.push({ index: k < n ? groupIndex * n + k : -1, sent: k < n, generation });
    }
  });
  return { choices, promptTokens };
}
