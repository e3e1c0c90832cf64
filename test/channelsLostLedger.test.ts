// A gateway restarted on another (empty) ledger while a channel held charges it had not claimed: the
// payer's next voucher acknowledges them, and they are claimed, not served again for nothing.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { createPayingFetch } from "../src/buyer/index.js";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { createLedger, createPgliteClient } from "../src/ledger/index.js";
import { captureLogger } from "../src/ledger/testkit/captureLogger.js";
import { channelTestConfig } from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness, testGatewayConfig } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness({ configure: channelTestConfig });
});
after(async () => {
  await h?.close();
});

test("a gateway on an empty ledger takes the charges a channel's payer acknowledges from the lost one: payTo gets everything served", async () => {
  const buyer = await h.devnet.createBuyer(100_000_000n);
  const pay = createPayingFetch({
    privateKey: buyer.privateKey,
    rpcUrl: h.devnet.rpcUrl,
    dataDir: "memory://",
  });
  /** One paid chat; its charge and the channel's cumulative after it, from its receipt. */
  const chat = async (gatewayUrl: string, tag: string) => {
    const response = await pay(`${gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: mockModelId,
        messages: [{ role: "user", content: `hello ${tag}` }],
        max_tokens: 64,
      }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    return BigInt(receipt.amount ?? "0");
  };
  const { logger, records } = captureLogger();
  let second: Awaited<ReturnType<typeof startGateway>> | undefined;
  const ledger = await createLedger(await createPgliteClient());
  try {
    let chargedFirst = 0n;
    for (let i = 0; i < 3; i++) chargedFirst += await chat(h.gateway.url, `first ${i}`);
    const [first] = await h.ledger.channels.list();
    assert.equal(first?.chargedAtomic, chargedFirst);
    assert.equal(first?.totalClaimedAtomic, 0n, "nothing claimed yet");
    // The first gateway dies without claiming; the next one starts on an empty ledger.
    await h.gateway.channels!.settlement.stop({ flush: false });
    second = await startGateway({
      config: parseGatewayConfig(
        channelTestConfig(testGatewayConfig({ devnet: h.devnet, backendUrl: h.backend.url })),
      ),
      ledger,
      pollingIntervalMs: 20,
      logger,
    });
    let chargedSecond = 0n;
    for (let i = 0; i < 3; i++) chargedSecond += await chat(second.url, `second ${i}`);
    const [channel] = await ledger.channels.list();
    assert.equal(
      channel?.chargedAtomic,
      chargedFirst + chargedSecond,
      "the first gateway's charges are its base",
    );
    const warning = records.find((record) =>
      String(record.msg).startsWith("a channel unknown to this ledger was charged elsewhere"),
    );
    assert.equal(warning?.level, 40, "the operator is told");
    assert.equal(warning?.adoptedAtomic, chargedFirst.toString());

    const payTo = h.devnet.accounts.payTo.address;
    const before = await h.devnet.usdcBalance(payTo);
    await second.close();
    second = undefined;
    assert.equal(
      await h.devnet.usdcBalance(payTo),
      before + chargedFirst + chargedSecond,
      "claimed and settled: every request served is paid",
    );
  } finally {
    await second?.close();
    await (pay as { close?: () => Promise<void> }).close?.();
    await ledger.close();
  }
});
