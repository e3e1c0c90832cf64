// A gateway restarted on another (empty) ledger while a channel held charges it had not claimed: it
// cannot claim them (a voucher binds no request, so it is no proof of them), and says so.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { createLedger, createPgliteClient } from "../src/ledger/index.js";
import { captureLogger } from "../src/ledger/testkit/captureLogger.js";
import { channelChatBuyer, channelTestConfig } from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness, testGatewayConfig } from "./support/gatewayHarness.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness({ configure: channelTestConfig });
});
after(async () => {
  await h?.close();
});

test("a gateway on an empty ledger, meeting a channel charged through the lost one, warns with the amount it cannot claim, and serves on the chain's base", async () => {
  const { chat, close } = await channelChatBuyer(h);
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
    assert.equal(channel?.chargedAtomic, chargedSecond, "this ledger's own charges, on the chain's base");
    const warnings = records.filter((record) =>
      String(record.msg).startsWith(
        "a channel this ledger has no record of was charged through another ledger",
      ),
    );
    assert.equal(warnings.length, 1, "the operator is told, once: the payer resyncs");
    assert.equal(warnings[0]?.level, 40);
    assert.equal(warnings[0]?.elsewhereAtomic, chargedFirst.toString(), "the charges it cannot claim");

    const payTo = h.devnet.accounts.payTo.address;
    const before = await h.devnet.usdcBalance(payTo);
    await second.close();
    second = undefined;
    assert.equal(
      await h.devnet.usdcBalance(payTo),
      before + chargedSecond,
      "what this ledger charged is claimed and settled; the lost ledger's charges only it can claim",
    );
  } finally {
    await second?.close();
    await close();
    await ledger.close();
  }
});
