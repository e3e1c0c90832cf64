import { type RouteKind, routes } from "./routes/index.js";

/** The output limits the routes set in the backend's body themselves: one named again carries the same limit. */
const OUTPUT_LIMIT_FIELDS = new Set(["max_tokens", "max_completion_tokens", "max_output_tokens"]);

/** Fields a route writes into the backend's body itself besides the output limit (`store: false` on Responses). */
const ROUTE_SET_FIELDS = ["model", "stream", "stream_options", "store"];

/**
 * An output-limit field that is a field of a request the model serves: set to the output limit, it would
 * change what the backend is asked (`n` or `best_of` as that many choices, `model` as a number), not what
 * the buyer was quoted and paid for.
 */
export function outputLimitFieldClashes(model: {
  id: string;
  kind: RouteKind;
  maxOutputTokens: number;
  backend: { apis?: readonly RouteKind[] | undefined; outputLimitFields: readonly string[] };
}): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  model.backend.outputLimitFields.forEach((field, index) => {
    if (OUTPUT_LIMIT_FIELDS.has(field)) return;
    const kind = (model.backend.apis ?? [model.kind]).find(
      (served) => routes[served].forwardedFields?.has(field) || ROUTE_SET_FIELDS.includes(field),
    );
    if (kind === undefined) return;
    problems.push({
      path: ["backend", "outputLimitFields", index],
      message: `model ${model.id}: "${field}" is a field of ${kind} requests, which the gateway forwards to the backend: set to the output limit (up to maxOutputTokens, ${model.maxOutputTokens}), it would change the request the buyer paid for (n or best_of would ask that many choices, each generated at the seller's cost); name only the backend's own output-limit field (n_predict for llama.cpp, max_new_tokens for TGI)`,
    });
  });
  return problems;
}
