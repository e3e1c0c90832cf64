import { anthropicMessages } from "./anthropicMessages.js";
import { chatCompletions } from "./chatCompletions.js";
import { completions } from "./completions.js";
import { embeddings } from "./embeddings.js";
import { imageGenerations } from "./imageGenerations.js";
import { moderations } from "./moderations.js";
import { openAiResponses } from "./openAiResponses.js";
import type { RouteAdapter, RouteKind } from "./RouteAdapter.js";

export type {
  OutputPiece,
  OutputReading,
  RouteAdapter,
  RouteKind,
  RouteRequest,
  StreamTrailer,
} from "./RouteAdapter.js";

/** Every inference API the gateway bills, by kind: one module each. */
export const routes: Readonly<Record<RouteKind, RouteAdapter>> = {
  chat: chatCompletions,
  completion: completions,
  embedding: embeddings,
  messages: anthropicMessages,
  responses: openAiResponses,
  image: imageGenerations,
  moderation: moderations,
};

/** The route a path names (`…/chat/completions`, `…/completions`, `…/embeddings`, `…/messages`, `…/responses`, `…/moderations`). */
export function routeOfPath(path: string): RouteAdapter | undefined {
  const trimmed = path.replace(/\/+$/, "");
  return Object.values(routes).find(
    (route) =>
      trimmed.endsWith(route.path) && (route.kind !== "completion" || !trimmed.endsWith("/chat/completions")),
  );
}
