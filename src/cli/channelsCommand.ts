import { z } from "zod";
import { type ChannelRecord, channelShortfallAtomic } from "../ledger/index.js";
import { formatMoney } from "../pricing/index.js";
import { parseFlags, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { openCliLedger } from "./openCliLedger.js";

const flagsSchema = z.object({
  dataDir: z.string().default(".tollgate/ledger"),
  json: z.boolean().default(false),
});

const moneyFields = [
  "depositedAtomic",
  "balanceAtomic",
  "chargedAtomic",
  "totalClaimedAtomic",
  "settledAtomic",
  "refundedAtomic",
] as const;

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
  const { ledger } = await openCliLedger({ dataDir: flags.dataDir });
  try {
    const channels = await ledger.channels.list();
    const setAside = await ledger.channels.listSetAside();
    const totals = Object.fromEntries(
      moneyFields.map((field) => [field, channels.reduce((sum, c) => sum + c[field], 0n)]),
    ) as Record<(typeof moneyFields)[number], bigint>;
    const short = channels.filter((c) => channelShortfallAtomic(c) > 0n);
    const shortfallAtomic = short.reduce((sum, c) => sum + channelShortfallAtomic(c), 0n);
    if (flags.json) {
      printLine(
        JSON.stringify(
          {
            totals: {
              channels: channels.length,
              ...Object.fromEntries(moneyFields.map((field) => [field, totals[field].toString()])),
              shortChannels: short.length,
              shortfallAtomic: shortfallAtomic.toString(),
            },
            channels: channels.map((c) => ({
              channelId: c.channelId,
              network: c.network,
              payer: c.payer,
              ...Object.fromEntries(moneyFields.map((field) => [field, c[field].toString()])),
              unclaimedAtomic: (c.chargedAtomic - c.totalClaimedAtomic).toString(),
              shortfallAtomic: channelShortfallAtomic(c).toString(),
              withdrawRequestedAt: c.withdrawRequestedAt || null,
              lastRequestAt: c.lastRequestAt ? new Date(c.lastRequestAt).toISOString() : null,
            })),
            setAside: setAside.map((c) => ({
              channelId: c.channelId,
              network: c.network,
              genesisHash: c.genesisHash,
              chargedAtomic: c.chargedAtomic.toString(),
              totalClaimedAtomic: c.totalClaimedAtomic.toString(),
              reason: c.reason,
              setAsideAt: c.setAsideAt.toISOString(),
            })),
          },
          null,
          2,
        ),
      );
      return 0;
    }
    const row = (cells: string[]) =>
      `  ${cells.map((cell, i) => (i < 2 ? cell.padEnd(i === 0 ? 12 : 44) : cell.padStart(12))).join(" ")}`;
    printLine(`Payment channels (${channels.length})`);
    printLine(
      row(["channel", "payer", "deposited", "balance", "charged", "claimed", "settled", "withdrawal"]),
    );
    for (const c of channels) printLine(row(describe(c)));
    printLine(
      row([
        "total",
        "",
        formatMoney(totals.depositedAtomic),
        formatMoney(totals.balanceAtomic),
        formatMoney(totals.chargedAtomic),
        formatMoney(totals.totalClaimedAtomic),
        formatMoney(totals.settledAtomic),
        "",
      ]),
    );
    for (const c of short)
      printLine(
        `short: ${c.channelId} — its payer ${c.payer} withdrew before its charges were claimed and owes ${formatMoney(channelShortfallAtomic(c))} beyond the escrow; it is refused until it deposits into this channel`,
      );
    if (setAside.length > 0)
      printLine(
        `(${setAside.length} channel(s) of earlier chains set aside, not counted above: a devnet started afresh; --json lists them)`,
      );
    return 0;
  } finally {
    await ledger.close();
  }
}

function describe(c: ChannelRecord): string[] {
  return [
    `${c.channelId.slice(0, 10)}…`,
    c.payer,
    formatMoney(c.depositedAtomic),
    formatMoney(c.balanceAtomic),
    formatMoney(c.chargedAtomic),
    formatMoney(c.totalClaimedAtomic),
    formatMoney(c.settledAtomic),
    c.withdrawRequestedAt ? new Date(c.withdrawRequestedAt * 1000).toISOString() : "none",
  ];
}
