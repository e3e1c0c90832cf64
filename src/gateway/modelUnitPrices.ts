import { resolveUnitPrices, type UnitPrices } from "../pricing/index.js";
import type { ModelConfig } from "./gatewayConfig.js";
import { isUnitPriced } from "./unofferedModels.js";

const resolved = new WeakMap<ModelConfig, UnitPrices | undefined>();

/**
 * A model's `upto` price per unit (its `prices` map with the `inputPrice`, `outputPrice`,
 * `fixedFee` and `pricePerSecond` shorthands folded in), or undefined when it is sold only at a
 * fixed `exact` price. Throws TOLLGATE_CONFIG_INVALID when a shorthand and its unit are both set.
 */
export function modelUnitPrices(model: ModelConfig): UnitPrices | undefined {
  if (resolved.has(model)) return resolved.get(model);
  const prices = isUnitPriced(model)
    ? resolveUnitPrices({
        prices: model.prices,
        inputPrice: model.inputPrice,
        outputPrice: model.outputPrice,
        fixedFee: model.fixedFee,
        pricePerSecond: model.pricePerSecond,
      })
    : undefined;
  resolved.set(model, prices);
  return prices;
}
