import { PRICE_SHORTHANDS, type UsageUnit } from "../pricing/index.js";
import { type RouteKind, routes } from "./routes/index.js";

/** The pricing keys of a model's config, as the schema has parsed them. */
export type PricedModel = {
  id: string;
  kind: RouteKind;
  backend: { apis?: readonly RouteKind[] | undefined };
  inputPrice?: bigint | undefined;
  outputPrice?: bigint | undefined;
  fixedFee: bigint;
  pricePerSecond?: bigint | undefined;
  prices?: Partial<Record<UsageUnit, bigint>> | undefined;
  imagePrices?: Record<string, bigint> | undefined;
  exactPrice?: bigint | undefined;
};

/** One refusal: the config key (under the model) and what to do about it. */
export type PriceProblem = { path: (string | number)[]; message: string };

const INPUT_UNITS = ["input_tokens", "cached_input_tokens", "cache_write_input_tokens"] as const;
const OUTPUT_UNITS = ["output_tokens", "reasoning_tokens"] as const;

/** The routes a model answers on: its backend's APIs, else its kind. */
export function servedRoutes(model: PricedModel): readonly RouteKind[] {
  return model.backend.apis ?? [model.kind];
}

/**
 * The units a route counts in its usage: every route times its backend, counts the request and
 * reads a prompt; only routes whose answer is tokens count output, and each route the units it declares
 * (`meters`: the image route's images, speech's input characters).
 */
export function unitsMeteredBy(kind: RouteKind): ReadonlySet<UsageUnit> {
  const units = new Set<UsageUnit>(["compute_ms", "requests", ...INPUT_UNITS]);
  if (routes[kind].outputTokens) for (const unit of OUTPUT_UNITS) units.add(unit);
  for (const unit of routes[kind].meters ?? []) units.add(unit);
  return units;
}

/**
 * Each unit the model puts a price on (`"$0"` included: a price of nothing is still a choice), with
 * the config key that sets it, so a refusal names the key the operator wrote.
 */
export function pricedUnits(model: PricedModel): Map<UsageUnit, string> {
  const keys = new Map<UsageUnit, string>();
  for (const [unit, price] of Object.entries(model.prices ?? {}))
    if (price !== undefined) keys.set(unit as UsageUnit, `prices.${unit}`);
  for (const [shorthand, unit] of PRICE_SHORTHANDS) {
    const price = model[shorthand];
    // fixedFee defaults to 0, which is how the config says "no fee".
    if (price === undefined || (shorthand === "fixedFee" && price === 0n)) continue;
    keys.set(unit, shorthand);
  }
  if (Object.keys(model.imagePrices ?? {}).length > 0) keys.set("images", "imagePrices");
  return keys;
}

/**
 * A shorthand and the unit it stands for both set: which one wins is not obvious, and the gateway
 * would refuse every request of the model when it resolves the prices.
 */
function shorthandClashes(model: PricedModel): PriceProblem[] {
  const problems: PriceProblem[] = [];
  for (const [shorthand, unit] of PRICE_SHORTHANDS) {
    const price = model[shorthand];
    if (price === undefined || (shorthand === "fixedFee" && price === 0n)) continue;
    if (model.prices?.[unit] === undefined) continue;
    problems.push({
      path: [shorthand],
      message: `model ${model.id} sets ${shorthand} and prices.${unit}, the same price twice: keep one of them`,
    });
  }
  return problems;
}

/** A priced unit none of the model's routes counts would be quoted and charged as nothing. */
function unmeteredPrices(model: PricedModel, priced: Map<UsageUnit, string>): PriceProblem[] {
  const served = servedRoutes(model);
  const metered = new Set(served.flatMap((kind) => [...unitsMeteredBy(kind)]));
  const problems: PriceProblem[] = [];
  for (const [unit, key] of priced) {
    // output_bytes has its own refusal in the schema.
    if (metered.has(unit) || unit === "output_bytes") continue;
    const remedy =
      unit === "images"
        ? `add image to backend.apis if the backend draws images, or remove ${key}`
        : unit === "input_characters"
          ? `add speech to backend.apis if the backend speaks, or remove ${key}`
          : unit === "input_audio_seconds"
            ? `add transcription to backend.apis if the backend transcribes audio, or remove ${key}`
            : `add a route whose answer is tokens (chat, completion, messages, responses) to backend.apis, or remove ${key}`;
    problems.push({
      path: key.split("."),
      message: `model ${model.id} prices ${unit} (${key}), which none of its routes (${served.join(", ")}) meters, so it would never be charged: ${remedy}`,
    });
  }
  return problems;
}

/**
 * A price of a kind of token beside none of the base unit: the tokens not itemized (uncached
 * input, output that is not reasoning) would be sold for nothing.
 */
function splitWithoutBase(model: PricedModel, priced: Map<UsageUnit, string>): PriceProblem[] {
  const pairs = [
    ["cached_input_tokens", "input_tokens", "inputPrice"],
    ["cache_write_input_tokens", "input_tokens", "inputPrice"],
    ["reasoning_tokens", "output_tokens", "outputPrice"],
  ] as const;
  const problems: PriceProblem[] = [];
  for (const [part, base, shorthand] of pairs) {
    if (!priced.has(part) || priced.has(base)) continue;
    problems.push({
      path: ["prices", part],
      message: `model ${model.id} prices ${part} but not ${base}, so the ${base.replace("_", " ")} not counted as ${part.replace(/_/g, " ")} would be sold for nothing: set ${shorthand} (or prices.${base})`,
    });
  }
  return problems;
}

/** A route the model serves on which every request would be free: no priced unit is counted there and no fixed price applies. */
function freeRoutes(model: PricedModel, priced: Map<UsageUnit, string>): PriceProblem[] {
  if (model.exactPrice !== undefined) return [];
  const problems: PriceProblem[] = [];
  for (const kind of servedRoutes(model)) {
    const metered = unitsMeteredBy(kind);
    if ([...priced.keys()].some((unit) => metered.has(unit))) continue;
    problems.push({
      path: ["backend", "apis"],
      message: `model ${model.id} serves ${kind} requests but prices none of the units that route meters (${[...metered].join(", ")}), so every ${kind} request would be served for nothing: price one of them, set exactPrice, or remove ${kind} from backend.apis`,
    });
  }
  return problems;
}

/**
 * Every way the model's prices would sell something for nothing that the operator did not write
 * as free: a price no route meters, an itemized token price without its base price, a served
 * route with no price at all, a shorthand beside its own unit. Empty when the prices are sound.
 * `checkFreeRoutes` is false when the schema already refused the model for having no price.
 */
export function modelPriceProblems(model: PricedModel, checkFreeRoutes: boolean): PriceProblem[] {
  const priced = pricedUnits(model);
  return [
    ...shorthandClashes(model),
    ...unmeteredPrices(model, priced),
    ...splitWithoutBase(model, priced),
    ...(checkFreeRoutes ? freeRoutes(model, priced) : []),
  ];
}
