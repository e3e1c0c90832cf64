import { z } from "zod";
import { formatMoney } from "../pricing/index.js";
import { type ChannelsReport, readChannelsReport } from "./channelsReport.js";
import { escapeC1Controls, parseFlags, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { readChannelsThroughGateway, unreadableLedger } from "./ledgerAccess.js";
import { openCliLedger } from "./openCliLedger.js";

const flagsSchema = z.object({
  dataDir: z.string().default(".tollgate/ledger"),
  json: z.boolean().default(false),
});

/** `tollgate channels`: the payment channels the gateway is paid through, and their totals. */
export async function channelsCommand(argv: string[]): Promise<number> {
  // The buyer's listing shares the command name: `--buyer` selects it.
  if (argv.includes("--buyer")) return (await import("./buyerChannelsCommand.js")).buyerChannelsCommand(argv);
  const { flags } = parseFlags(
    "channels",
    argv,
    commandFlags.channels,
    z.preprocess(
      (values) => ({ ...(values as object), dataDir: (values as Record<string, unknown>)["data-dir"] }),
      flagsSchema,
    ),
  );
  const report = await readChannels(flags.dataDir);
  if (flags.json) {
    printLine(escapeC1Controls(JSON.stringify(report, null, 2)));
    return 0;
  }
  const { totals, channels, setAside } = report;
  const money = (atomic: string) => formatMoney(BigInt(atomic));
  const row = (cells: string[]) =>
    `  ${cells.map((cell, i) => (i < 2 ? cell.padEnd(i === 0 ? 12 : 44) : cell.padStart(12))).join(" ")}`;
  printLine(`Payment channels (${channels.length})`);
  printLine(row(["channel", "payer", "deposited", "balance", "charged", "claimed", "settled", "withdrawal"]));
  for (const c of channels)
    printLine(
      row([
        `${c.channelId.slice(0, 10)}…`,
        c.payer,
        money(c.depositedAtomic),
        money(c.balanceAtomic),
        money(c.chargedAtomic),
        money(c.totalClaimedAtomic),
        money(c.settledAtomic),
        c.withdrawRequestedAt ? new Date(c.withdrawRequestedAt * 1000).toISOString() : "none",
      ]),
    );
  printLine(
    row([
      "total",
      "",
      money(totals.depositedAtomic),
      money(totals.balanceAtomic),
      money(totals.chargedAtomic),
      money(totals.totalClaimedAtomic),
      money(totals.settledAtomic),
      "",
    ]),
  );
  for (const c of channels.filter((channel) => BigInt(channel.shortfallAtomic) > 0n))
    printLine(
      `short: ${c.channelId} — its payer ${c.payer} withdrew before its charges were claimed and owes ${money(c.shortfallAtomic)} beyond the escrow; it is refused until it deposits into this channel`,
    );
  if (setAside.length > 0)
    printLine(
      `(${setAside.length} channel(s) of earlier chains set aside, not counted above: a devnet started afresh; --json lists them)`,
    );
  return 0;
}

/**
 * PostgreSQL when DATABASE_URL is set; otherwise through the running gateway that holds the PGlite data dir
 * (PGlite is one process's database), or from the data dir itself when no gateway holds it.
 */
async function readChannels(dataDir: string): Promise<ChannelsReport> {
  if (!process.env.DATABASE_URL) {
    const served = await readChannelsThroughGateway(dataDir);
    if (served) return served;
    const unreadable = unreadableLedger(dataDir);
    if (unreadable) throw unreadable;
  }
  const { ledger } = await openCliLedger({ dataDir });
  try {
    return await readChannelsReport(ledger.channels);
  } finally {
    await ledger.close();
  }
}
