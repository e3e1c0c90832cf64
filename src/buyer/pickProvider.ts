import { money } from "./policyRefusal.js";

/** What the router knows of one allowed offer: its price for this request and its measured speed. */
export type PickableProvider = {
  /** How the offer is named in explanations (`http://host:port/v1 model`). */
  label: string;
  /** What the buyer expects to authorize for this request there. */
  expectedMaxAtomic: bigint;
  /** Smoothed time to first token measured on earlier paid requests; undefined when never measured. */
  ttftMs: number | undefined;
};

export type PickProviderParameters<Provider extends PickableProvider> = {
  /** Offers the policy allows, in any order. */
  allowed: readonly Provider[];
  /** The policy's `routing.preferFastestWithinPercent`; undefined: price only. */
  preferFastestWithinPercent: number | undefined;
};

export type PickProviderReturnType<Provider extends PickableProvider> = {
  chosen: Provider | undefined;
  /** Why, in words for people (without the provider's own name, which the caller adds). */
  why: string;
};

const ms = (value: number) => `${Math.round(value)} ms`;

/**
 * The provider to send a request to. By default the cheapest. With `preferFastestWithinPercent`
 * (p): among the offers priced at most p% above the cheapest, one never measured is tried first
 * (the cheapest such), so that every candidate gets a time to first token; once all are measured,
 * the fastest is chosen (the cheaper on a tie). A faster offer beyond the margin is named, not taken.
 * @example
 * pickProvider({ allowed, preferFastestWithinPercent: 20 }).why
 * // "fastest within 20% of the cheapest: 41 ms TTFT vs 180 ms, at most $0.0013 vs $0.0012"
 */
export function pickProvider<Provider extends PickableProvider>({
  allowed,
  preferFastestWithinPercent: percent,
}: PickProviderParameters<Provider>): PickProviderReturnType<Provider> {
  const byPrice = [...allowed].sort((a, b) =>
    a.expectedMaxAtomic < b.expectedMaxAtomic ? -1 : a.expectedMaxAtomic > b.expectedMaxAtomic ? 1 : 0,
  );
  const cheapest = byPrice[0];
  if (!cheapest) return { chosen: undefined, why: "no offer within policy" };
  const cheapestWhy = `the cheapest for this request within policy, at most ${money(cheapest.expectedMaxAtomic)}`;
  if (percent === undefined || byPrice.length === 1) return { chosen: cheapest, why: cheapestWhy };

  // Exact in atomic units: price × 10000 ≤ cheapest × (10000 + basis points of the margin).
  const basisPoints = BigInt(Math.round(percent * 100));
  const withinMargin = (provider: Provider) =>
    provider.expectedMaxAtomic * 10_000n <= cheapest.expectedMaxAtomic * (10_000n + basisPoints);
  const within = byPrice.filter(withinMargin);
  const margin = `within ${percent}% of the cheapest`;

  const unmeasured = within.find((provider) => provider.ttftMs === undefined);
  if (unmeasured) {
    return {
      chosen: unmeasured,
      why: `not measured yet, tried to learn its time to first token (${margin}, at most ${money(unmeasured.expectedMaxAtomic)})`,
    };
  }
  let fastest = cheapest;
  for (const provider of within) if ((provider.ttftMs ?? 0) < (fastest.ttftMs ?? 0)) fastest = provider;
  const fastestMs = fastest.ttftMs ?? 0;
  let why: string;
  if (fastest === cheapest) {
    const next = within.find((provider) => provider !== cheapest);
    why = `${cheapestWhy}, and the fastest ${margin}: ${ms(fastestMs)} TTFT${
      next?.ttftMs === undefined ? "" : ` vs ${ms(next.ttftMs)}`
    }`;
  } else {
    why = `fastest ${margin}: ${ms(fastestMs)} TTFT vs ${ms(cheapest.ttftMs ?? 0)}, at most ${money(
      fastest.expectedMaxAtomic,
    )} vs ${money(cheapest.expectedMaxAtomic)}`;
  }
  const fasterBeyond = byPrice
    .filter(
      (provider) => !withinMargin(provider) && provider.ttftMs !== undefined && provider.ttftMs < fastestMs,
    )
    .sort((a, b) => (a.ttftMs ?? 0) - (b.ttftMs ?? 0))[0];
  if (fasterBeyond) {
    why += `; ${fasterBeyond.label} is faster (${ms(fasterBeyond.ttftMs ?? 0)} TTFT) but ${percentAbove(
      fasterBeyond.expectedMaxAtomic,
      cheapest.expectedMaxAtomic,
    )} above the cheapest, beyond ${percent}%`;
  }
  return { chosen: fastest, why };
}

/** How far `price` is above `base`, in whole percent rounded up ("50%"). */
function percentAbove(price: bigint, base: bigint): string {
  if (base === 0n) return "more than 0";
  return `${((price - base) * 100n + base - 1n) / base}%`;
}
