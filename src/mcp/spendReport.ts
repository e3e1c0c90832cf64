import type { DaySpend, SpendingPolicy } from "../buyer/index.js";
import { formatMoney } from "../pricing/index.js";

/** Today's spend against the policy's caps: a few lines for people, and the figures (atomic strings). */
export function spendReport(
  spend: DaySpend,
  policy: SpendingPolicy | undefined,
): { text: string; figures: Record<string, unknown> } {
  const left = (cap: bigint | undefined, counted: bigint) =>
    cap === undefined ? undefined : cap > counted ? cap - counted : 0n;
  const describe = (counted: bigint, cap: bigint | undefined) =>
    cap === undefined
      ? `${formatMoney(counted)} (no daily cap)`
      : `${formatMoney(counted)} of ${formatMoney(cap)}, ${formatMoney(left(cap, counted) ?? 0n)} left`;
  const lines = [`spend on ${spend.day} (UTC): ${describe(spend.countedAtomic, policy?.daily)}`];
  if (policy?.perCall !== undefined) lines.push(`per call: at most ${formatMoney(policy.perCall)}`);
  if (policy?.confirmAbove !== undefined)
    lines.push(`a person confirms any maximum above ${formatMoney(policy.confirmAbove)}`);
  const providers = spend.providers.map((provider) => {
    const cap = policy?.providers[provider.origin]?.daily;
    lines.push(
      `  ${provider.origin}: ${describe(provider.countedAtomic, cap)} — charged ${formatMoney(provider.chargedAtomic)}, reserved ${formatMoney(provider.reservedAtomic)}, ${provider.payments} payments`,
    );
    return {
      origin: provider.origin,
      countedAtomic: provider.countedAtomic.toString(),
      chargedAtomic: provider.chargedAtomic.toString(),
      reservedAtomic: provider.reservedAtomic.toString(),
      payments: provider.payments,
      dailyCapAtomic: cap?.toString() ?? null,
      leftAtomic: left(cap, provider.countedAtomic)?.toString() ?? null,
    };
  });
  if (providers.length === 0) lines.push("  no payments today");
  return {
    text: lines.join("\n"),
    figures: {
      day: spend.day,
      countedAtomic: spend.countedAtomic.toString(),
      dailyCapAtomic: policy?.daily?.toString() ?? null,
      leftAtomic: left(policy?.daily, spend.countedAtomic)?.toString() ?? null,
      perCallAtomic: policy?.perCall?.toString() ?? null,
      confirmAboveAtomic: policy?.confirmAbove?.toString() ?? null,
      providers,
    },
  };
}
