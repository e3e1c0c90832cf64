export {
  AUDIO_DURATION_FORMATS,
  audioSeconds,
  MAX_AUDIO_FILE_BYTES,
  MAX_AUDIO_SECONDS,
} from "./audioSeconds.js";
export { completionCount } from "./completionCount.js";
export { chargeAtomic, costAtomic } from "./costAtomic.js";
export { countCharacters } from "./countCharacters.js";
export { type CountPromptTokensOptions, countPromptTokens } from "./countPromptTokens.js";
export { countTextTokensChunked } from "./countTextTokensChunked.js";
export { type MaxAtomicForRequestParameters, maxAtomicForRequest } from "./maxAtomicForRequest.js";
export { maxCostOfUnits, type UsageBound } from "./maxCostOfUnits.js";
export { assertModelPrice, type ModelPrice, TOKENS_PER_PRICE_UNIT, type TokenUsage } from "./modelPrice.js";
export {
  type FormatMoneyOptions,
  formatMoney,
  type ParseMoneyOptions,
  parseMoney,
  USDC_DECIMALS,
} from "./money.js";
export { type PromptCacheControl, promptCacheControls } from "./promptCacheControls.js";
export { PLAIN_BYTES_PER_TOKEN, promptCountPlausible } from "./promptCountPlausible.js";
export { DEFAULT_CHAT_PROMPT_FIELDS } from "./promptParts.js";
export {
  DOCUMENT_TOKENS,
  EXACT_TEXT_BYTES,
  imageTokenBound,
  type PromptKind,
  type PromptTokenBoundParameters,
  promptTokenBound,
} from "./promptTokenBound.js";
export { type ResolveOutputLimitOptions, resolveOutputLimit } from "./resolveOutputLimit.js";
export {
  PRICE_SHORTHANDS,
  type ResolveUnitPricesParameters,
  resolveUnitPrices,
} from "./resolveUnitPrices.js";
export {
  chatPlainTexts,
  messagesPlainTexts,
  messagesPromptBody,
  rerankPlainTexts,
  rerankPromptBody,
  responsesPlainTexts,
  responsesPromptBody,
} from "./routePromptBody.js";
export { textTokenBound } from "./textTokenBound.js";
export { countTextTokens, type TokenizerName, tokenizerForModel, utf8ByteLength } from "./tokenizer.js";
export {
  assertUnitPrices,
  compactUsage,
  costOfUnits,
  describeUnitPrices,
  isUsageUnit,
  UNIT_SCALE,
  type UnitPrices,
  type UnitUsage,
  USAGE_UNITS,
  type UsageUnit,
  unitPricesToStrings,
} from "./usageUnits.js";
