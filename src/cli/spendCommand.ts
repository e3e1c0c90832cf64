import { z } from "zod";
import type { DaySpend, SpendDispute, SpendingPolicy } from "../buyer/index.js";
import { formatMoney } from "../pricing/index.js";
import { exitCodes, parseFlags, printLine, waitForShutdownSignal } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { jsonLine, loadPolicy, openCliSpendStore } from "./payCommand.js";
import { serveSpendDashboard } from "./spendDashboard.js";

const flagsSchema = z.object({
  json: z.boolean().default(false),
  policy: z.string().optional(),
  serve: z.boolean().default(false),
  host: z.string().default("127.0.0.1"),
  port: z.coerce.number().int().min(0).max(65535).default(4030),
});

/** `tollgate spend`: what today cost, against the caps, and what is disputed. */
export async function spendCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags("spend", argv, commandFlags.spend, flagsSchema);
  const policy = await loadPolicy(flags.policy ?? process.env.TOLLGATE_POLICY);
  const store = await openCliSpendStore();
  try {
    if (flags.serve) {
      const server = await serveSpendDashboard({ store, policy, host: flags.host, port: flags.port });
      printLine(flags.json ? jsonLine({ dashboardUrl: server.url }) : `spend dashboard: ${server.url}`);
      await waitForShutdownSignal();
      await server.close();
      return exitCodes.ok;
    }
    const spend = await store.daySpend();
    const disputes = await store.disputes({ status: "open" });
    if (flags.json) printLine(jsonLine(spendReport(spend, disputes, policy)));
    else printLine(formatSpend(spend, disputes, policy));
    return exitCodes.ok;
  } finally {
    await store.close();
  }
}

function spendReport(spend: DaySpend, disputes: SpendDispute[], policy: SpendingPolicy | undefined) {
  return {
    day: spend.day,
    countedAtomic: spend.countedAtomic,
    dailyCapAtomic: policy?.daily ?? null,
    // Money on one network and asset is not money on another (test USDC on a devnet is worth nothing).
    byAsset: assetsOf(spend).map(({ network, asset, providers }) => ({
      network,
      asset,
      countedAtomic: providers.reduce((sum, provider) => sum + provider.countedAtomic, 0n),
      chargedAtomic: providers.reduce((sum, provider) => sum + provider.chargedAtomic, 0n),
    })),
    providers: spend.providers.map((provider) => ({
      ...provider,
      dailyCapAtomic: policy?.providers[provider.origin]?.daily ?? null,
    })),
    disputes,
  };
}

function assetsOf(spend: DaySpend) {
  const groups = new Map<string, { network: string; asset: string; providers: DaySpend["providers"] }>();
  for (const provider of spend.providers) {
    const key = `${provider.network} ${provider.asset.toLowerCase()}`;
    const group = groups.get(key) ?? { network: provider.network, asset: provider.asset, providers: [] };
    group.providers.push(provider);
    groups.set(key, group);
  }
  return [...groups.values()];
}

function formatSpend(spend: DaySpend, disputes: SpendDispute[], policy: SpendingPolicy | undefined): string {
  // What was counted against a cap, and what is left under it; or that there is none.
  const against = (countedAtomic: bigint, limit: bigint | undefined, none: string) =>
    limit === undefined
      ? `${formatMoney(countedAtomic)} (${none})`
      : `${formatMoney(countedAtomic)} of ${formatMoney(limit)}, ${formatMoney(limit > countedAtomic ? limit - countedAtomic : 0n)} left`;
  const lines = [
    `spend on ${spend.day} (UTC): ${against(spend.countedAtomic, policy?.daily, "no daily cap")}`,
  ];
  for (const { network, asset, providers } of assetsOf(spend)) {
    const counted = providers.reduce((sum, provider) => sum + provider.countedAtomic, 0n);
    lines.push(`  ${network} · asset ${asset}: ${formatMoney(counted)}`);
    for (const provider of providers) {
      lines.push(
        `    ${provider.origin}  ${against(provider.countedAtomic, policy?.providers[provider.origin]?.daily, "no daily cap of its own")}` +
          ` — charged ${formatMoney(provider.chargedAtomic)}, reserved ${formatMoney(provider.reservedAtomic)}, ${provider.payments} payment${provider.payments === 1 ? "" : "s"}`,
      );
    }
  }
  if (spend.providers.length === 0) lines.push("  no payments today");
  lines.push(`open disputes: ${disputes.length}`);
  for (const dispute of disputes) {
    const justified = dispute.justifiedAtomic === undefined ? "?" : formatMoney(dispute.justifiedAtomic);
    lines.push(
      `  #${dispute.id} ${dispute.origin} ${dispute.reason}: charged ${formatMoney(dispute.chargedAtomic)}, justified ${justified}, maximum ${formatMoney(dispute.maxAtomic)}${dispute.transaction ? `, tx ${dispute.transaction}` : ""}`,
    );
  }
  return lines.join("\n");
}
