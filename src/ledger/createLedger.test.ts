import { after, before } from "node:test";
import { createMemoryPayerQuotas } from "./createPayerQuotas.js";
import { type LedgerHarness, openPgliteHarness } from "./testkit/ledgerHarness.js";
import { describePayerQuotas } from "./testkit/payerQuotasSuite.js";
import { describePaymentLedger } from "./testkit/paymentLedgerSuite.js";
import { describePaymentTransitions } from "./testkit/paymentTransitionSuite.js";
import { describeSettlementLog } from "./testkit/settlementLogSuite.js";

// One in-memory PGlite for the file (opening one costs about a second); each test starts from empty tables.
let harness: LedgerHarness;
before(async () => {
  harness = await openPgliteHarness();
});
after(() => harness.ledger.close());

describePaymentLedger("PGlite", () => harness);
describePaymentTransitions("PGlite", () => harness);
describeSettlementLog("PGlite", () => harness);
describePayerQuotas("PGlite", () => ({ first: harness.ledger.quotas, second: harness.ledger.quotas }));
describePayerQuotas("memory", () => {
  const quotas = createMemoryPayerQuotas();
  return { first: quotas, second: quotas };
});
