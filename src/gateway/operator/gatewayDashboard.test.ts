import assert from "node:assert/strict";
import { after, test } from "node:test";
import { openPgliteHarness } from "../../ledger/testkit/ledgerHarness.js";
import { paymentAt } from "../../ledger/testkit/paymentLifecycle.js";
import { readGatewayDashboard } from "./gatewayDashboard.js";

const harness = await openPgliteHarness();
after(() => harness.ledger.close());

test("the revenue chart names one payment in the singular and others in the plural", async () => {
  // One bucket of about 31 years (from 2001): every payment of this test falls in it.
  const chart = async () => {
    const dashboard = await readGatewayDashboard({
      ledger: harness.ledger,
      buckets: 1,
      bucketSeconds: 1_000_000_000,
    });
    return dashboard.sections.find((section) => section.id === "revenue")?.html ?? "";
  };
  assert.match(await chart(), /\$0\.00 \(0 payments\)/);
  await paymentAt(harness.ledger.payments, "settled", 1);
  assert.match(await chart(), /\$0\.001234 \(1 payment\)/);
  await paymentAt(harness.ledger.payments, "settled", 2);
  assert.match(await chart(), /\$0\.002468 \(2 payments\)/);
});
