import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Page } from "playwright-core";
import type { PaymentRecord } from "../src/ledger/index.js";
import { formatMoney } from "../src/pricing/index.js";
import { type GatewayHarness, officialPayingFetch, startGatewayHarness } from "./support/gatewayHarness.js";
import { launchChromium } from "./support/launchChromium.js";
import { mockModelId } from "./support/mockBackend.js";

const token = "browser-dashboard-token-0123";
let h: GatewayHarness;
let browser: Awaited<ReturnType<typeof launchChromium>>;

before(async () => {
  h = await startGatewayHarness({
    configure: (input) => ({ ...input, dashboard: { enabled: true, token } }),
  });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await h?.close();
});

async function paidRequest(maxTokens: number): Promise<void> {
  const buyer = h.devnet.accounts.buyers[0]!;
  const response = await officialPayingFetch(buyer.privateKey, h.devnet.network)(
    `${h.gateway.url}/v1/chat/completions`,
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: mockModelId,
        messages: [{ role: "user", content: "a paid question" }],
        max_tokens: maxTokens,
      }),
    },
  );
  assert.equal(response.status, 200, await response.clone().text());
  await response.text();
}

/** The ledger once every payment is final. */
async function finalRows(): Promise<PaymentRecord[]> {
  for (;;) {
    const rows = await h.ledger.payments.recent({ limit: 1000 });
    if (rows.every((row) => ["settled", "zero", "debt", "failed"].includes(row.status))) return rows;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const settledSum = (rows: PaymentRecord[]) =>
  rows.reduce((sum, row) => sum + (row.status === "settled" ? (row.chargeAtomic ?? 0n) : 0n), 0n);

const figure = async (page: Page, key: string) =>
  (await page.locator(`[data-figure="${key}"]`).textContent()) ?? "";

test("the dashboard loads in Chromium with no console error, shows the ledger's figures, and updates after a payment", async () => {
  await paidRequest(24);
  const before = await finalRows();
  const page = await browser.context.newPage();
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));
  const response = await page.goto(h.gateway.dashboardUrl!);
  assert.equal(response?.status(), 200);
  assert.equal(h.gateway.dashboardUrl, `${h.gateway.url}/dashboard?token=${token}`);

  assert.equal(await figure(page, "charged"), formatMoney(settledSum(before)));
  assert.equal(await figure(page, "payments"), String(before.length));
  const newest = before[0]!;
  const recent = (await page.locator('[data-table="recent"]').textContent()) ?? "";
  assert.ok(recent.includes(newest.requestId!), "the newest payment's request id is listed");
  // Every decimal in a column, so amounts line up: $0.000228 beside $0.050000, not $0.05.
  assert.ok(recent.includes(formatMoney(newest.chargeAtomic!, { trim: false })), "with its charge");
  assert.ok(recent.includes(formatMoney(newest.maxAtomic, { trim: false })), "and its maximum");
  const models = (await page.locator('[data-table="models"]').textContent()) ?? "";
  assert.ok(models.includes(mockModelId));
  // A column's amounts all have six decimals (nothing owed reads $0.000000, not $0.00).
  const amounts = models.match(/\$\d+\.\d+/g) ?? [];
  assert.ok(amounts.length >= 4, models);
  assert.deepEqual(
    amounts.filter((amount) => !/\.\d{6}$/.test(amount)),
    [],
    "every amount in the table has six decimals",
  );
  assert.equal(
    (await page.locator('svg[data-chart="revenue"] rect').count()) > 0,
    true,
    "the revenue chart is drawn",
  );

  // A new payment: the page polls and shows it without a reload.
  await paidRequest(40);
  const afterRows = await finalRows();
  assert.equal(afterRows.length, before.length + 1);
  await page.waitForFunction(
    (expected) => document.querySelector('[data-figure="payments"]')?.textContent === expected,
    String(afterRows.length),
    { timeout: 30_000 },
  );
  assert.equal(await figure(page, "charged"), formatMoney(settledSum(afterRows)));
  assert.ok(
    ((await page.locator('[data-table="recent"]').textContent()) ?? "").includes(afterRows[0]!.requestId!),
  );
  assert.deepEqual(problems, [], "no console error");
  await page.close();
});

test("the dashboard page without its token is refused, and the browser is told why", async () => {
  const page = await browser.context.newPage();
  const response = await page.goto(`${h.gateway.url}/dashboard`);
  assert.equal(response?.status(), 401);
  assert.match((await page.locator("body").textContent()) ?? "", /operator token/);
  await page.close();
});
