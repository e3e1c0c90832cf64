// Ledger stage costs, measured by calling the same ledger methods the gateway and facilitator call,
// in the same order, on a PGlite ledger of the same kind as the serving stack's.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openLedger } from "../src/ledger/index.js";
import { type Summary, summarize } from "./stats.js";

export type LedgerFigures = {
  /** Before inference: debt check and replay lookup (one statement), claim into serving. */
  claim: Summary;
  /** After inference: usage, → settling, settlement log begin and complete, → settled. */
  writes: Summary;
};

/** Times the ledger's share of `samples` paid requests, one at a time. */
export async function runLedgerBench({
  samples,
  memory,
}: {
  samples: number;
  memory: boolean;
}): Promise<LedgerFigures> {
  const dir = memory ? undefined : await mkdtemp(join(tmpdir(), "tollgate-bench-ledger-"));
  const ledger = await openLedger({ dataDir: dir ? join(dir, "ledger") : undefined });
  const network = "eip155:31337";
  const payer = "0x1111111111111111111111111111111111111111";
  const claimDurations: number[] = [];
  const writeDurations: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const key = { network, payer, nonce: BigInt(1_000_000 + i) };
      const claimStartedAt = performance.now();
      const admission = await ledger.payments.admission(key);
      if (admission.inDebt || admission.existing) throw new Error("bench: a fresh nonce was refused");
      const claim = await ledger.payments.claim(
        {
          ...key,
          scheme: "upto",
          model: "bench-latency",
          route: "/v1/chat/completions",
          asset: "0x2222222222222222222222222222222222222222",
          payTo: "0x3333333333333333333333333333333333333333",
          maxAtomic: 10_000n,
          paymentPayload: { x402Version: 2, payload: { signature: "0x00" } },
          paymentRequirements: { scheme: "upto", amount: "10000" },
        },
        { serving: true },
      );
      if (!claim.claimed) throw new Error("bench: a fresh nonce was not claimed");
      claimDurations.push(performance.now() - claimStartedAt);

      const writeStartedAt = performance.now();
      const id = claim.payment.id;
      await ledger.payments.recordUsage(id, { promptTokens: 20, completionTokens: 16 }, 300n);
      await ledger.payments.markSettling(id);
      await ledger.settlements.begin(key, 300n);
      const transaction = `0x${i.toString(16).padStart(64, "0")}`;
      await ledger.settlements.complete(key, { transaction, result: { success: true, transaction } });
      await ledger.payments.markSettled(id, { transaction, chargeAtomic: 300n });
      writeDurations.push(performance.now() - writeStartedAt);
    }
  } finally {
    await ledger.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  }
  return { claim: summarize(claimDurations), writes: summarize(writeDurations) };
}
