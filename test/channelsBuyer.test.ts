// Tollgate's own buyer SDK pays a Tollgate gateway through a payment channel: one deposit, then
// vouchers; every charge it reconciles matches the gateway's ledger, and no overcharge is flagged.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createPayingFetch } from "../src/buyer/index.js";
import { eventLog } from "./support/buyerFixtures.js";
import { channelTestConfig } from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

let h: GatewayHarness;

before(async () => {
  // Channels only, so the buyer's choice is not in question.
  h = await startGatewayHarness({
    configure: (input) => ({ ...channelTestConfig(input), schemes: ["batch-settlement"] }),
  });
});

after(async () => {
  await h?.close();
});

describe("Tollgate's buyer pays a Tollgate gateway by channel", () => {
  test("one deposit, then vouchers; receipts match the ledger; no overcharge", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const log = eventLog();
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      onEvent: log.onEvent,
    });
    try {
      for (let i = 0; i < 6; i++) {
        const response = await payingFetch(`${h.gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: mockModelId,
            messages: [{ role: "user", content: `hello ${i}` }],
            max_tokens: 32,
          }),
        });
        assert.equal(response.status, 200, await response.clone().text());
        await response.text();
      }
      await payingFetch.idle();
      assert.equal(log.of("overcharge").length, 0);
      const receipts = log.of("receipt");
      assert.equal(receipts.length, 6);
      const rows = (await h.ledger.payments.recent({ limit: 100 })).filter(
        (row) => row.scheme === "batch-settlement",
      );
      assert.equal(rows.length, 6);
      assert.equal(
        receipts.reduce((sum, receipt) => sum + receipt.chargedAtomic, 0n),
        rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n),
      );
    } finally {
      await payingFetch.close();
    }
  });
});
