// An operator restores an older copy of the ledger while channels are open: the payer's client was
// charged more than the restored ledger holds. The gateway cannot claim those charges; the operator is told.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
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

test("a gateway on a ledger restored from an older copy warns, with the amount, when a channel's payer signs above its charges", async () => {
  const { chat, close } = await channelChatBuyer(h);
  const { logger, records } = captureLogger();
  let second: Awaited<ReturnType<typeof startGateway>> | undefined;
  try {
    await chat(h.gateway.url, "1");
    const [backup] = await h.ledger.channels.list();
    const lostAtomic = (await chat(h.gateway.url, "2")) + (await chat(h.gateway.url, "3"));
    // The gateway stops before its claim round; the operator puts back the copy taken after request 1.
    await h.gateway.channels!.settlement.stop({ flush: false });
    await h.ledger.channels.update(backup!.channelId, () => ({ next: backup!, result: undefined }));
    second = await startGateway({
      config: parseGatewayConfig(
        channelTestConfig(testGatewayConfig({ devnet: h.devnet, backendUrl: h.backend.url })),
      ),
      ledger: h.ledger,
      pollingIntervalMs: 20,
      logger,
    });
    await chat(second.url, "4");
    const warnings = records.filter((record) =>
      String(record.msg).startsWith("a channel's payer signs above this ledger's charges"),
    );
    assert.equal(warnings.length, 1, "the operator is told, once: the payer resyncs");
    assert.equal(warnings[0]?.level, 40);
    assert.equal(warnings[0]?.aboveLedgerAtomic, lostAtomic.toString(), "the charges this ledger lost");
    assert.equal(warnings[0]?.channelId, backup!.channelId);
  } finally {
    await second?.close();
    await close();
  }
});
