import { costOfUnits, type UnitPrices } from "./usageUnits.js";

/** The most a request may use, per kind of quantity (each unit priced at the dearest unit it could be billed as). */
export type UsageBound = {
  /** Prompt tokens: billed as input, cached input (cache reads) or cache-write tokens. */
  inputTokens?: number | bigint;
  /** Output tokens over every choice: billed as output or reasoning tokens. */
  outputTokens?: number | bigint;
  images?: number | bigint;
  computeMs?: number | bigint;
  outputBytes?: number | bigint;
  /** Characters of input text (speech): known exactly from the request. */
  inputCharacters?: number | bigint;
  /** Seconds of input audio (transcriptions): read from the file, so known exactly from the request. */
  inputAudioSeconds?: number | bigint;
};

const dearer = (a: bigint | undefined, b: bigint | undefined): bigint | undefined =>
  a === undefined ? b : b === undefined ? a : a > b ? a : b;

/**
 * The maximum a request may cost: its bound in every unit at the dearest price that unit could
 * be billed at, plus one request's fee. No split of the same quantities into units (cached or
 * not, written to a cache or not, reasoning or not) costs more, so a charge of usage within the bound never exceeds it.
 * @example
 * maxCostOfUnits({ inputTokens: 812, outputTokens: 256 }, prices)
 */
export function maxCostOfUnits(bound: UsageBound, prices: UnitPrices): bigint {
  const inputPrice = dearer(
    dearer(prices.input_tokens, prices.cached_input_tokens),
    prices.cache_write_input_tokens,
  );
  const outputPrice = dearer(prices.output_tokens, prices.reasoning_tokens);
  return costOfUnits(
    {
      input_tokens: bound.inputTokens ?? 0,
      output_tokens: bound.outputTokens ?? 0,
      images: bound.images ?? 0,
      compute_ms: bound.computeMs ?? 0,
      output_bytes: bound.outputBytes ?? 0,
      input_characters: bound.inputCharacters ?? 0,
      input_audio_seconds: bound.inputAudioSeconds ?? 0,
      requests: 1,
    },
    {
      ...prices,
      ...(inputPrice !== undefined ? { input_tokens: inputPrice } : {}),
      ...(outputPrice !== undefined ? { output_tokens: outputPrice } : {}),
    },
  );
}
