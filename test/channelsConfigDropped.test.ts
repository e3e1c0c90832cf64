// An operator restarts a gateway whose ledger holds charges on open channels with the `channels` section
// taken out of its config: nothing would ever claim them, and their payers could withdraw them.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startDevnet } from "../src/devnet/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { channelTestConfig, openTestChannel } from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness, testGatewayConfig } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness({ configure: channelTestConfig });
});
after(async () => {
  await h?.close();
});

const body = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 32,
});

test("a restart without the channels section, while the ledger holds unclaimed channel charges, is refused naming the channel; once claimed and settled it starts", async () => {
  const { channelId, charged } = await openTestChannel(h, { body });
  const chargedAtomic = await charged();
  assert.ok(chargedAtomic > 0n, "the channel request was charged");
  // The gateway dies before its claim round (no flush at stop).
  await h.gateway.channels!.settlement.stop({ flush: false });
  const withoutChannels = parseGatewayConfig(
    testGatewayConfig({ devnet: h.devnet, backendUrl: h.backend.url }),
  );
  await assert.rejects(
    startGateway({ config: withoutChannels, ledger: h.ledger }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      error.shortMessage.includes(channelId) &&
      /charged and not claimed/.test(error.shortMessage) &&
      /no channels section/.test(error.shortMessage),
  );
  assert.equal((await h.ledger.channels.get(channelId))?.totalClaimedAtomic, 0n, "still owed to the seller");

  // The operator does as told: starts once more with channels and stops it, which claims and settles.
  const again = await startGateway({
    config: parseGatewayConfig(
      channelTestConfig(testGatewayConfig({ devnet: h.devnet, backendUrl: h.backend.url })),
    ),
    ledger: h.ledger,
  });
  await again.close();
  const after = await h.ledger.channels.get(channelId);
  assert.equal(after?.settledAtomic, chargedAtomic, "claimed and settled to payTo");
  const plain = await startGateway({ config: withoutChannels, ledger: h.ledger });
  await plain.close();
});

test("a restart without the channels section on a new devnet starts: the finished chain's channels are set aside, not claimable", async () => {
  // h's loop was stopped by the test above: this channel's charge stays unclaimed.
  const { channelId } = await openTestChannel(h, { body });
  const devnet = await startDevnet({ buyers: 1 });
  try {
    const plain = await startGateway({
      config: parseGatewayConfig(testGatewayConfig({ devnet, backendUrl: h.backend.url })),
      ledger: h.ledger,
    });
    await plain.close();
    assert.equal(await h.ledger.channels.get(channelId), undefined, "set aside with its chain");
  } finally {
    await devnet.stop();
  }
});
