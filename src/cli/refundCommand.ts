import { z } from "zod";
import { type ChannelRefundOutcome, refundChannels } from "../buyer/index.js";
import { privateKeyAccount } from "../chain/index.js";
import { formatMoney } from "../pricing/index.js";
import { exitCodes, parseFlags, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { jsonLine, openCliSpendStore } from "./payCommand.js";
import { readPrivateKey } from "./readPrivateKey.js";

const flagsSchema = z.object({
  gateway: z.url(),
  url: z.url().optional(),
  rpc: z.url().optional(),
  "private-key": z.string().optional(),
  json: z.boolean().default(false),
});

/** Where Tollgate's gateway takes cooperative refunds. */
const GATEWAY_REFUND_PATH = "/v1/channels/refund";

/**
 * `tollgate refund --gateway URL`: gets back what is left in the buyer's channels with that
 * gateway — a cooperative refund, or (the seller not answering, `--rpc` given) the on-chain
 * withdrawal; run again after the withdrawal delay to finish it. Exits 0 when every channel was
 * refunded, withdrawn, is pending or had nothing left; 1 when one failed.
 */
export async function refundCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags("refund", argv, commandFlags.refund, flagsSchema);
  const account = privateKeyAccount(
    readPrivateKey(
      flags["private-key"] ?? process.env.TOLLGATE_PRIVATE_KEY,
      "--private-key or TOLLGATE_PRIVATE_KEY",
    ),
  );
  const gateway = new URL(flags.gateway);
  const store = await openCliSpendStore();
  try {
    const outcomes = await refundChannels({
      store,
      account,
      origin: gateway.origin,
      rpcUrl: flags.rpc,
      refundUrl: flags.url ?? new URL(GATEWAY_REFUND_PATH, gateway.origin).toString(),
    });
    if (flags.json) printLine(jsonLine({ outcomes }));
    else printLine(formatOutcomes(gateway.origin, outcomes));
    return outcomes.some((outcome) => outcome.kind === "failed") ? exitCodes.failure : exitCodes.ok;
  } finally {
    await store.close();
  }
}

function formatOutcomes(origin: string, outcomes: ChannelRefundOutcome[]): string {
  if (outcomes.length === 0) return `no channels with ${origin}: nothing to refund`;
  return outcomes
    .map((outcome) => {
      const id = `${outcome.channelId.slice(0, 10)}…`;
      switch (outcome.kind) {
        case "refunded":
          return `${id} refunded${outcome.amountAtomic === undefined ? "" : ` ${formatMoney(outcome.amountAtomic)}`} · tx ${outcome.transaction}`;
        case "withdrawal_started":
          return `${id} ${outcome.because}: withdrawal of ${formatMoney(outcome.amountAtomic)} started (tx ${outcome.transaction}); run tollgate refund again after ${outcome.finalizableAt.toISOString()} to finish it`;
        case "withdrawal_pending":
          return `${id} withdrawal of ${formatMoney(outcome.amountAtomic)} pending until ${outcome.finalizableAt.toISOString()}`;
        case "withdrawn":
          return `${id} withdrawn ${formatMoney(outcome.amountAtomic)} · tx ${outcome.transaction}`;
        case "nothing_to_refund":
          return `${id} nothing left to refund`;
        default:
          return `${id} refund failed: ${outcome.reason}`;
      }
    })
    .join("\n");
}
