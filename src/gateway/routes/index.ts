import { anthropicMessages } from "./anthropicMessages.js";
import { chatCompletions } from "./chatCompletions.js";
import { completions } from "./completions.js";
import { embeddings } from "./embeddings.js";
import { imageGenerations } from "./imageGenerations.js";
import { moderations } from "./moderations.js";
import { openAiResponses } from "./openAiResponses.js";
import type { RouteAdapter } from "./RouteAdapter.js";
import { rerank } from "./rerank.js";
import { speech } from "./speech.js";
import { transcriptions } from "./transcriptions.js";

export type {
  OutputPiece,
  OutputReading,
  RouteAdapter,
  RouteKind,
  RouteRequest,
  StreamTrailer,
} from "./RouteAdapter.js";

/**
 * Every inference API the gateway bills, by kind: one module each. A route is added here, and
 * nowhere else: the config's `kind` and `backend.apis`, the path lookup and the quote read it.
 */
export const routes = {
  chat: chatCompletions,
  completion: completions,
  embedding: embeddings,
  messages: anthropicMessages,
  responses: openAiResponses,
  image: imageGenerations,
  moderation: moderations,
  rerank,
  speech,
  transcription: transcriptions,
} as const satisfies Record<string, RouteAdapter>;

/** Every route kind, for the config's schema. */
export const routeKinds = Object.keys(routes) as [keyof typeof routes, ...(keyof typeof routes)[]];

/**
 * The route a path names (`…/chat/completions`, `…/completions`, `…/embeddings`, …): the one whose
 * path is the longest ending of it, so `/chat/completions` is chat's, not completions'.
 */
export function routeOfPath(path: string): RouteAdapter | undefined {
  const trimmed = path.replace(/\/+$/, "");
  let found: RouteAdapter | undefined;
  for (const route of Object.values(routes) as RouteAdapter[]) {
    if (trimmed.endsWith(route.path) && (found === undefined || route.path.length > found.path.length))
      found = route;
  }
  return found;
}
