import { createLedger, type Ledger } from "../createLedger.js";
import { createPgliteClient } from "../createPgliteClient.js";
import type { ClaimPaymentInput } from "../PaymentLedger.js";
import type { SqlClient } from "../SqlClient.js";
import { forgetSingleProcessBook } from "../singleProcessBook.js";

/** A migrated ledger for a test file, with the client under it and a way to empty it between tests. */
export type LedgerHarness = {
  ledger: Ledger;
  sql: SqlClient;
  /** Empties payments and settlements (schema and migrations stay). */
  reset(): Promise<void>;
};

/** Opens a harness over any client; the harness owns it (`ledger.close()` closes it). */
export async function openHarness(sql: SqlClient): Promise<LedgerHarness> {
  const ledger = await createLedger(sql);
  return {
    ledger,
    sql,
    async reset() {
      await sql.exec("TRUNCATE payments, settlements RESTART IDENTITY");
      forgetSingleProcessBook(sql);
    },
  };
}

/** An in-memory PGlite harness. */
export async function openPgliteHarness(): Promise<LedgerHarness> {
  return openHarness(await createPgliteClient());
}

/** A distinct, well-formed EVM address for test number `n`. */
export function payerAddress(n: number): string {
  return `0x${n.toString(16).padStart(40, "a")}`;
}

/** A distinct, well-formed transaction hash for test number `n`. */
export function transactionHash(n: number): string {
  return `0x${n.toString(16).padStart(64, "b")}`;
}

let nextNonce = 1n;

/** A claim for a fresh authorization; override any field. */
export function claimInput(overrides: Partial<ClaimPaymentInput> = {}): ClaimPaymentInput {
  const nonce = overrides.nonce ?? nextNonce++;
  const network = overrides.network ?? "eip155:31337";
  const payer = overrides.payer ?? payerAddress(1);
  const maxAtomic = overrides.maxAtomic ?? 50_000n;
  return {
    network,
    payer,
    nonce,
    scheme: "upto",
    model: "llama-3.1-8b",
    route: "/v1/chat/completions",
    asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
    maxAtomic,
    paymentPayload: {
      x402Version: 2,
      accepted: { scheme: "upto", network, amount: maxAtomic.toString() },
      payload: { signature: "0xsig", permit2Authorization: { nonce: nonce.toString(), from: payer } },
    },
    paymentRequirements: {
      scheme: "upto",
      network,
      amount: maxAtomic.toString(),
      extra: { name: "USDC", version: "2" },
    },
    ...overrides,
  };
}
