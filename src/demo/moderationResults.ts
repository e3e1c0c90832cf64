import { randomUUID } from "node:crypto";
import { z } from "zod";
import { hashText } from "./hashText.js";

// The OpenAI moderation API as a fake backend answers it:
// https://platform.openai.com/docs/api-reference/moderations

const itemSchema = z.union([
  z.string(),
  z.looseObject({ type: z.literal("text"), text: z.string() }),
  z.looseObject({ type: z.literal("image_url"), image_url: z.looseObject({ url: z.string() }) }),
]);

/** POST /v1/moderations: the fields the fake acts on, the rest kept. */
export const moderationsRequestSchema = z.looseObject({
  model: z.string().optional(),
  input: z.union([z.string(), z.array(itemSchema).min(1)]),
});
export type ModerationsRequest = z.infer<typeof moderationsRequestSchema>;

/** Words that flag a text in a category: enough for a demo to show a flagged and a clean result. */
const CATEGORY_WORDS: Readonly<Record<string, RegExp>> = {
  harassment: /\b(idiot|stupid|loser)\b/i,
  "harassment/threatening": /\b(i will hurt you|watch your back)\b/i,
  hate: /\b(hate all)\b/i,
  "hate/threatening": /\b(exterminate)\b/i,
  illicit: /\b(steal|counterfeit)\b/i,
  "illicit/violent": /\b(build a bomb)\b/i,
  "self-harm": /\b(hurt myself)\b/i,
  "self-harm/intent": /\b(want to die)\b/i,
  "self-harm/instructions": /\b(how to self-harm)\b/i,
  sexual: /\b(explicit sex)\b/i,
  "sexual/minors": /\b(sexual minors)\b/i,
  violence: /\b(kill|murder|attack|stab)\b/i,
  "violence/graphic": /\b(gore|dismember)\b/i,
};

/** One result per input: scores high for a category whose words appear, low and stable otherwise. */
function resultOf(item: z.infer<typeof itemSchema>) {
  const isImage = typeof item !== "string" && item.type === "image_url";
  const text = typeof item === "string" ? item : item.type === "text" ? item.text : item.image_url.url;
  const categories: Record<string, boolean> = {};
  const scores: Record<string, number> = {};
  const appliedTypes: Record<string, string[]> = {};
  for (const [category, words] of Object.entries(CATEGORY_WORDS)) {
    const hit = !isImage && words.test(text);
    categories[category] = hit;
    // A small score that depends only on the input and the category: the same request, the same answer.
    scores[category] = hit ? 0.91 : (hashText(`${category}|${text}`) % 1000) / 1_000_000;
    appliedTypes[category] = [isImage ? "image" : "text"];
  }
  return {
    flagged: Object.values(categories).some(Boolean),
    categories,
    category_scores: scores,
    category_applied_input_types: appliedTypes,
  };
}

/** The whole answer to a moderation request; like OpenAI's, it reports no usage. */
export function moderationAnswer(body: ModerationsRequest) {
  const items = typeof body.input === "string" ? [body.input] : body.input;
  return {
    id: `modr-${randomUUID().replaceAll("-", "")}`,
    model: body.model ?? "omni-moderation-latest",
    results: items.map(resultOf),
  };
}
