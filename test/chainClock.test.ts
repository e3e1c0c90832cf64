import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createPublicClient, createTestClient, http } from "viem";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { holdStreams, mockModelId } from "./support/mockBackend.js";
import { finalRow, payFor } from "./support/paidRequests.js";

// The chain, not this host, decides when an authorization has expired: a gateway whose clock runs
// behind the chain's blocks (an operator's host minutes slow) must judge deadlines by the chain.

let devnet: Devnet;
let h: GatewayHarness;
const CHAT = "/v1/chat/completions";
const chat = {
  model: mockModelId,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 10,
  stream: true,
};

before(async () => {
  devnet = await startDevnet({ buyers: 3 });
  // Each request may run 20 s, then settle within 30 s: an authorization must outlive 50 s.
  h = await startGatewayHarness({
    devnet,
    configure: (input) => ({
      ...input,
      models: input.models.map((model) => ({
        ...model,
        backend: { ...model.backend, timeoutMs: 3_000, maxDurationSeconds: 20 },
      })),
    }),
  });
});
after(async () => {
  await h?.close();
  await devnet?.stop();
});

describe("a gateway whose clock runs behind the chain", () => {
  test("refuses before inference an authorization that the chain's clock leaves too little time", async () => {
    const testClient = createTestClient({ mode: "anvil", transport: http(devnet.rpcUrl) });
    const publicClient = createPublicClient({ transport: http(devnet.rpcUrl) });
    // The chain's blocks run 40 s ahead of this host's clock.
    const chainNow = Number((await publicClient.getBlock()).timestamp);
    const hostNow = Math.floor(Date.now() / 1000);
    await testClient.setNextBlockTimestamp({ timestamp: BigInt(Math.max(chainNow + 1, hostNow + 40)) });
    await testClient.mine({ blocks: 1 });
    const payer = devnet.accounts.buyers[0]!;
    const before = await devnet.usdcBalance(payer.address);
    h.backend.clearRequests();
    // 52 s by this host's clock, 12 s by the chain's: less than the 50 s the request needs.
    const release = holdStreams(h.backend, 1);
    const { response } = await payFor(h, CHAT, chat, payer.privateKey, { deadlineSeconds: 52 });
    // The held stream runs 15 s of its 20 s: the chain moves on meanwhile.
    if (response.status === 200) {
      await testClient.increaseTime({ seconds: 15 });
      await testClient.mine({ blocks: 1 });
    }
    release();
    const text = await response.text();
    const row = response.status === 200 ? await finalRow(h) : undefined;
    assert.equal(
      response.status,
      402,
      `served (${h.backend.inferenceRequests.length} inference) and its payment ended ${row?.status}, charged ${row?.chargeAtomic}, paid ${before - (await devnet.usdcBalance(payer.address))}`,
    );
    assert.match(JSON.parse(text).error, /^tollgate_authorization_expires_too_soon: /);
    assert.equal(h.backend.inferenceRequests.length, 0, "no inference ran");
  });

  test("a buyer whose clock runs behind is told so, not told to sign with the maxTimeoutSeconds it signed with", async () => {
    const payer = devnet.accounts.buyers[1]!;
    // The official client signs now + the offer's maxTimeoutSeconds (300 s): a clock 280 s behind signs this.
    const { response } = await payFor(h, CHAT, chat, payer.privateKey, { deadlineSeconds: 20 });
    const body = (await response.json()) as { error: string };
    assert.equal(response.status, 402);
    assert.match(body.error, /^tollgate_authorization_expires_too_soon: /);
    assert.match(
      body.error,
      /signed for the offer's maxTimeoutSeconds \(300 s\), by a clock about 2[78]\d s behind this gateway's/,
    );
  });
});
