import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createMemoryPayerQuotas } from "./createPayerQuotas.js";
import { claimInput, type LedgerHarness, openPgliteHarness, payerAddress } from "./testkit/ledgerHarness.js";
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

// What a claim reads (PostgreSQL's own counters of rows read from the payments table): a claim within a
// payer's funds reads the payer's payments in flight, its debts and what it had settled since its funds
// were read, not every payment it ever made, so its cost does not grow with the payer's history.
test("a claim within funds reads none of its payer's earlier settled payments", async () => {
  const { sql, ledger } = harness;
  await harness.reset();
  const payer = payerAddress(41);
  const history = 3_000;
  await sql.query(
    `INSERT INTO payments (network, payer, nonce, scheme, model, route, asset, pay_to, max_atomic, charge_atomic,
       status, payload, requirements, settled_at)
     SELECT $1, $2, (1000000 + g)::text, 'upto', 'm', '/v1/chat/completions', $3, $4, 100, 1, 'settled',
       '{"x402Version":2,"payload":{}}'::jsonb, '{"scheme":"upto","amount":"100"}'::jsonb, now() - interval '1 day'
     FROM generate_series(1, $5::int) g`,
    ["eip155:31337", payer, claimInput().asset, claimInput().payTo, history],
  );
  await sql.exec("SET stats_fetch_consistency = none");
  const rowsRead = async () => {
    await sql.query("SELECT pg_stat_force_next_flush()");
    const [row] = await sql.query<{ read: string }>(
      `SELECT (COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0))::text AS read
       FROM pg_stat_user_tables WHERE relname = 'payments'`,
    );
    return Number(row?.read);
  };
  const before = await rowsRead();
  const claimed = await ledger.payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 10_000n, {
    serving: true,
    settledSinceMs: Date.now() - 60_000,
    allowanceRead: true,
  });
  const read = (await rowsRead()) - before;
  assert.equal(claimed.claimed, true);
  assert.ok(read < 50, `the claim read ${read} payment rows; its payer has ${history} settled ones`);
  await harness.reset();
});
