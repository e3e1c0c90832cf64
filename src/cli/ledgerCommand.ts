import { z } from "zod";
import { formatMoney } from "../pricing/index.js";
import { parseFlags, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { openCliLedger } from "./openCliLedger.js";

const flagsSchema = z.object({
  dataDir: z.string().default(".tollgate/ledger"),
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
  const { ledger } = await openCliLedger({ dataDir: flags.dataDir });
  try {
    const [recent, totals] = await Promise.all([
      ledger.payments.recent({ limit: flags.limit }),
      ledger.payments.totals(),
    ]);
    if (flags.json) {
      printLine(
        JSON.stringify(
          {
            totals: totals.map((t) => ({
              model: t.model,
              count: t.count,
              authorizedAtomic: t.authorizedAtomic.toString(),
              chargedAtomic: t.chargedAtomic.toString(),
              owedAtomic: t.owedAtomic.toString(),
              byStatus: t.byStatus,
            })),
            recent: recent.map((p) => ({
              id: p.id,
              createdAt: p.createdAt.toISOString(),
              model: p.model,
              payer: p.payer,
              status: p.status,
              maxAtomic: p.maxAtomic.toString(),
              chargeAtomic: p.chargeAtomic?.toString() ?? null,
              promptTokens: p.promptTokens,
              completionTokens: p.completionTokens,
              transaction: p.transaction,
              error: p.error,
            })),
          },
          null,
          2,
        ),
      );
      return 0;
    }
    printLine("Totals per model");
    printLine(
      `  ${"model".padEnd(24)} ${"requests".padStart(8)} ${"authorized".padStart(14)} ${"charged".padStart(14)} ${"owed".padStart(12)}`,
    );
    for (const t of totals) {
      printLine(
        `  ${t.model.padEnd(24)} ${String(t.count).padStart(8)} ${formatMoney(t.authorizedAtomic).padStart(14)} ${formatMoney(t.chargedAtomic).padStart(14)} ${formatMoney(t.owedAtomic).padStart(12)}`,
      );
    }
    printLine("");
    printLine(`Recent payments (newest first, ${recent.length})`);
    for (const p of recent) {
      const charge = p.chargeAtomic === null ? "-" : formatMoney(p.chargeAtomic);
      const tokens = p.completionTokens === null ? "" : ` ${p.promptTokens}+${p.completionTokens} tok`;
      printLine(
        `  #${p.id} ${p.createdAt.toISOString()} ${p.model} ${p.payer} ${p.status} max ${formatMoney(p.maxAtomic)} charged ${charge}${tokens}${p.transaction ? ` tx ${p.transaction}` : ""}${p.error ? ` (${p.error})` : ""}`,
      );
    }
    return 0;
  } finally {
    await ledger.close();
  }
}
