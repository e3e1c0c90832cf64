import type { PricedModel } from "./modelPriceCoverage.js";

type SchemeName = "upto" | "batch-settlement" | "exact";

/** Whether a model is sold per unit (`upto`, and channels), rather than only at a fixed `exact` price. */
export function isUnitPriced(model: PricedModel): boolean {
  return (
    model.inputPrice !== undefined ||
    model.prices !== undefined ||
    // A fee per request is the shorthand of prices.requests; 0, its default, is no price.
    model.fixedFee > 0n ||
    model.pricePerSecond !== undefined ||
    model.imagePrices !== undefined
  );
}

/** Whether any price of the model is above zero: a request costing nothing cannot be paid by a channel voucher. */
function chargesSomething(model: PricedModel): boolean {
  const prices = [
    model.inputPrice,
    model.outputPrice,
    model.fixedFee,
    model.pricePerSecond,
    ...Object.values(model.prices ?? {}),
    ...Object.values(model.imagePrices ?? {}),
  ];
  return prices.some((price) => price !== undefined && price > 0n);
}

/**
 * The schemes that can sell this model: `upto` and channels (`batch-settlement`, with `channels` configured
 * and something to charge) for a model priced per unit, `exact` for one with an `exactPrice`.
 */
export function schemesSelling(model: PricedModel, channels: boolean): SchemeName[] {
  const selling: SchemeName[] = [];
  if (isUnitPriced(model)) {
    selling.push("upto");
    if (channels && chargesSomething(model)) selling.push("batch-settlement");
  }
  if (model.exactPrice !== undefined) selling.push("exact");
  return selling;
}

/**
 * Why no request to the model could be paid under the configured `schemes`, or undefined when one can:
 * such a model would answer every request `503 no payment scheme is available right now`.
 */
export function unofferedModelProblem(
  model: PricedModel,
  schemes: readonly string[],
  channels: boolean,
): string | undefined {
  const selling = schemesSelling(model, channels);
  if (selling.length === 0 || selling.some((scheme) => schemes.includes(scheme))) return undefined;
  const channelsNote =
    schemes.includes("batch-settlement") && !channels ? " (batch-settlement needs the channels key)" : "";
  return `model ${model.id} can be paid only by ${selling.join(" or ")}, which schemes (${schemes.join(", ")}) does not list${channelsNote}, so every request to it would be refused (503 no payment scheme is available): add ${selling.join(" or ")} to schemes`;
}

/**
 * The ids of the models no 402 could offer a way to pay, once the facilitator's support is known: those
 * whose only configured schemes are upto when the facilitator settles no upto on this network.
 */
export function modelsWithoutOffer(
  models: readonly PricedModel[],
  schemes: readonly string[],
  { channels, upto }: { channels: boolean; upto: boolean },
): string[] {
  return models
    .filter((model) =>
      schemesSelling(model, channels).every(
        (scheme) => !schemes.includes(scheme) || (scheme === "upto" && !upto),
      ),
    )
    .map((model) => model.id);
}
