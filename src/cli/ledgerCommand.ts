import { z } from "zod";
import { formatMoney } from "../pricing/index.js";
import { escapeC1Controls, parseFlags, printable, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import {
  DEFAULT_LEDGER_DIR,
  type LedgerReport,
  readLedgerReport,
  readLedgerThroughGateway,
  unreadableLedger,
} from "./ledgerAccess.js";
import { openCliLedger } from "./openCliLedger.js";

const flagsSchema = z.object({
  dataDir: z.string().default(DEFAULT_LEDGER_DIR),
  limit: z.coerce.number().int().min(1).max(1000).default(20),
  json: z.boolean().default(false),
});

/** `tollgate ledger`: what was authorized, charged and owed. */
export async function ledgerCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags(
    "ledger",
    argv,
    commandFlags.ledger,
    z.preprocess(
      (values) => ({ ...(values as object), dataDir: (values as Record<string, unknown>)["data-dir"] }),
      flagsSchema,
    ),
  );
  const report = await readReport(flags.dataDir, flags.limit);
  if (flags.json) {
    printLine(escapeC1Controls(JSON.stringify(report, null, 2)));
    return 0;
  }
  printLine("Totals per model");
  printLine(
    `  ${"model".padEnd(24)} ${"requests".padStart(8)} ${"authorized".padStart(14)} ${"charged".padStart(14)} ${"owed".padStart(12)}`,
  );
  // Every decimal, so the figures line up and $0.05 is not written beside $0.001234 with fewer digits.
  const money = (atomic: string) => formatMoney(BigInt(atomic), { trim: false });
  for (const t of report.totals) {
    printLine(
      `  ${printable(t.model).padEnd(24)} ${String(t.count).padStart(8)} ${money(t.authorizedAtomic).padStart(14)} ${money(t.chargedAtomic).padStart(14)} ${money(t.owedAtomic).padStart(12)}`,
    );
  }
  printLine("");
  printLine(`Recent payments (newest first, ${report.recent.length})`);
  for (const p of report.recent) {
    const charge = p.chargeAtomic === null ? "-" : money(p.chargeAtomic);
    const tokens = p.usage
      ? ` ${Object.entries(p.usage)
          // The unit's name, then its count: "requests 1, input_tokens 12".
          .map(([unit, count]) => `${printable(unit)} ${count}`)
          .join(", ")}`
      : p.completionTokens === null
        ? ""
        : ` ${p.promptTokens}+${p.completionTokens} tok`;
    // A row's words may hold a buyer's (a tool's error naming its arguments): one row, one line, no escapes.
    printLine(
      `  #${p.id} ${p.createdAt} ${printable(p.model)} ${printable(p.payer)} ${p.status} max ${money(p.maxAtomic)} charged ${charge}${tokens}${p.transaction ? ` tx ${printable(p.transaction)}` : ""}${p.error ? ` (${printable(p.error)})` : ""}`,
    );
  }
  return 0;
}

/**
 * PostgreSQL when DATABASE_URL is set; otherwise through the running gateway that holds the PGlite data dir
 * (PGlite is one process's database), or from the data dir itself when no gateway holds it.
 */
async function readReport(dataDir: string, limit: number): Promise<LedgerReport> {
  if (!process.env.DATABASE_URL) {
    const served = await readLedgerThroughGateway(dataDir, limit);
    if (served) return served;
    const unreadable = unreadableLedger(dataDir);
    if (unreadable) throw unreadable;
  }
  const { ledger } = await openCliLedger({ dataDir });
  try {
    return await readLedgerReport(ledger.payments, limit);
  } finally {
    await ledger.close();
  }
}
