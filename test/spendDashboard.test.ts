import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  createPayingFetch,
  openSpendStore,
  parseSpendingPolicy,
  type SpendStore,
} from "../src/buyer/index.js";
import { serveSpendDashboard } from "../src/cli/spendDashboard.js";
import { formatMoney } from "../src/pricing/index.js";
import { chatRequest } from "./support/buyerFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";

let h: GatewayHarness;
let store: SpendStore;
before(async () => {
  h = await startGatewayHarness();
  store = await openSpendStore({ dataDir: "memory://" });
});
after(async () => {
  await store?.close();
  await h?.close();
});

test("spend --serve: today's spend against every cap per provider, recent receipts and open disputes, live", async () => {
  const origin = new URL(h.gateway.url).origin;
  const policy = parseSpendingPolicy({
    perCall: "$0.05",
    daily: "$5.00",
    providers: { [origin]: { daily: "$1.00" }, "https://other.example": { daily: "$2.00" } },
  });
  const payingFetch = createPayingFetch({
    privateKey: h.devnet.accounts.buyers[1]!.privateKey,
    store,
    policy,
  });
  const pay = async () => {
    const response = await payingFetch(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatRequest(),
    });
    assert.equal(response.status, 200);
    await response.text();
    await payingFetch.idle();
  };
  await pay();
  const server = await serveSpendDashboard({
    store,
    policy,
    host: "127.0.0.1",
    port: 0,
    token: "spend-page-token-0123",
  });
  try {
    assert.equal((await fetch(server.url.replace(/\?.*$/, ""))).status, 401, "the page needs its token");
    const page = await fetch(server.url);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /Per provider/);
    assert.match(
      html,
      /other\.example/,
      "a provider of the policy is listed with its cap even before any payment",
    );

    const dataUrl = server.url.replace("/?", "/data.json?");
    const read = async () =>
      (await (await fetch(dataUrl)).json()) as {
        figures: { countedAtomic: string; receipts: number; openDisputes: number };
        sections: Record<string, string>;
      };
    const first = await read();
    const spend = await store.daySpend();
    assert.equal(first.figures.countedAtomic, spend.countedAtomic.toString());
    assert.equal(first.figures.receipts, 1);
    assert.match(
      first.sections.providers ?? "",
      new RegExp(formatMoney(spend.countedAtomic).replace("$", "\\$")),
    );
    assert.match(first.sections.providers ?? "", /\$1\.00/, "the provider's daily cap");
    const [receipt] = await store.recent({ limit: 1 });
    assert.ok(receipt?.transaction, "the receipt carries its transaction");
    assert.match(first.sections.receipts ?? "", new RegExp(receipt.transaction.slice(0, 8)));

    // A second payment and a dispute appear on the next poll.
    await pay();
    await store.recordDispute({
      reservationId: receipt.id,
      origin,
      reason: "above_usage",
      chargedAtomic: receipt.chargedAtomic ?? 0n,
      justifiedAtomic: 1n,
      maxAtomic: receipt.maxAtomic,
      transaction: receipt.transaction,
    });
    const second = await read();
    assert.equal(second.figures.receipts, 2);
    assert.equal(second.figures.openDisputes, 1);
    assert.match(second.sections.disputes ?? "", /above_usage/);
    assert.equal(second.figures.countedAtomic, (await store.daySpend()).countedAtomic.toString());
  } finally {
    await server.close();
    await payingFetch.close();
  }
});
