import { randomUUID } from "node:crypto";
import { z } from "zod";

// The rerank API (Jina's, Cohere's v2, vLLM's) as a fake backend answers it.

const documentSchema = z.union([z.string(), z.strictObject({ text: z.string() })]);

/** POST /v1/rerank: the fields the fake acts on, the rest kept. */
export const rerankRequestSchema = z.looseObject({
  model: z.string().optional(),
  query: z.string().min(1),
  documents: z.array(documentSchema).min(1),
  top_n: z.number().int().positive().nullish(),
  return_documents: z.boolean().nullish(),
});
export type RerankRequest = z.infer<typeof rerankRequestSchema>;

const wordsOf = (text: string) => new Set(text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []);

/** A score in [0, 1): the share of the query's words the document holds, nudged by its length so ties break alike. */
function relevance(queryWords: Set<string>, document: string): number {
  const words = wordsOf(document);
  let shared = 0;
  for (const word of queryWords) if (words.has(word)) shared++;
  return (shared / Math.max(queryWords.size, 1)) * 0.99 + 0.001 / (1 + document.length);
}

/**
 * The ranked answer: the `top_n` documents (default all) by descending word overlap with the query,
 * each `{ index, relevance_score }` (and `document` when asked for), usage `{ total_tokens }`: the
 * query counted beside each document, as a cross-encoder reads them.
 */
export function rerankAnswer(body: RerankRequest, countTokens: (inputs: readonly string[]) => number) {
  const texts = body.documents.map((document) => (typeof document === "string" ? document : document.text));
  const queryWords = wordsOf(body.query);
  const results = texts
    .map((text, index) => ({ index, relevance_score: relevance(queryWords, text), text }))
    .sort((a, b) => b.relevance_score - a.relevance_score || a.index - b.index)
    .slice(0, body.top_n ?? texts.length)
    .map(({ text, ...result }) => (body.return_documents ? { ...result, document: { text } } : result));
  return {
    id: `rerank-${randomUUID()}`,
    model: body.model,
    results,
    usage: { total_tokens: countTokens(texts.flatMap((text) => [body.query, text])) },
  };
}
