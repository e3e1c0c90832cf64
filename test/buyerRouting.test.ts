import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  chooseProvider,
  createPayingFetch,
  openSpendStore,
  type SpendingPolicyInput,
  type SpendStore,
} from "../src/buyer/index.js";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { type GatewayHarness, startGatewayHarness, testPrices } from "./support/gatewayHarness.js";
import { mockCompletionText, mockModelId } from "./support/mockBackend.js";
import { runCli } from "./support/runCli.js";

// Two gateways on one devnet, each in front of its own mock backend: the cheap one answers its
// first token late on purpose; the fast one costs 10% more.
let devnet: Devnet;
let slow: GatewayHarness;
let fast: GatewayHarness;
let dataDir: string;

before(async () => {
  devnet = await startDevnet({ buyers: 2 });
  slow = await startGatewayHarness({ devnet });
  fast = await startGatewayHarness({
    devnet,
    model: {
      inputPrice: ((testPrices.inputPerMTokAtomic * 11n) / 10n).toString(),
      outputPrice: ((testPrices.outputPerMTokAtomic * 11n) / 10n).toString(),
    },
  });
  slow.backend.set({ responseTokens: 6, tokensPerSecond: 0, firstTokenDelayMs: 600 });
  fast.backend.set({ responseTokens: 6, tokensPerSecond: 0 });
  dataDir = await mkdtemp(join(tmpdir(), "tollgate-routing-"));
});
after(async () => {
  await fast?.close();
  await slow?.close();
  await devnet?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const body = { messages: [{ role: "user", content: "hello there" }], max_tokens: 20, stream: true };

/** Routes one request as `tollgate chat` does, pays it, reads the stream to its end. */
async function routeAndPay(store: SpendStore, policy: SpendingPolicyInput) {
  const route = await chooseProvider({
    gateways: [slow.gateway.url, fast.gateway.url],
    models: [mockModelId],
    body,
    policy,
    latencies: await store.providerLatencies(),
  });
  assert.ok(route.chosen, route.reason);
  const pay = createPayingFetch({ privateKey: devnet.accounts.buyers[0]!.privateKey, store, policy });
  pay.learnPrices(route.candidates.map((candidate) => candidate.model));
  const response = await pay(`${route.chosen.model.baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ...body, model: route.chosen.model.id }),
  });
  assert.equal(response.status, 200);
  const text = await response.text();
  assert.match(text, /x402_receipt/);
  await pay.close();
  return { origin: route.chosen.origin, reason: route.reason };
}

describe("latency-aware routing", () => {
  test("learns each provider's time to first token, then prefers the fast one within the margin; not beyond it", async () => {
    const slowOrigin = new URL(slow.gateway.url).origin;
    const fastOrigin = new URL(fast.gateway.url).origin;
    const within: SpendingPolicyInput = { channels: "never", routing: { preferFastestWithinPercent: 20 } };
    const store = await openSpendStore({ dataDir });
    try {
      const first = await routeAndPay(store, within);
      assert.equal(first.origin, slowOrigin, "both unmeasured: the cheaper is tried first");
      assert.match(first.reason, /not measured yet/);
      const second = await routeAndPay(store, within);
      assert.equal(second.origin, fastOrigin, "the other is still unmeasured: it is tried next");
      const measured = await store.providerLatencies();
      assert.deepEqual(
        measured.map((entry) => [entry.origin, entry.samples]).sort(),
        [
          [fastOrigin, 1],
          [slowOrigin, 1],
        ].sort(),
      );
      for (let round = 0; round < 2; round++) {
        const next = await routeAndPay(store, within);
        assert.equal(next.origin, fastOrigin, next.reason);
        assert.match(next.reason, /fastest within 20% of the cheapest: \d+ ms TTFT vs \d+ ms/);
      }
      const fastSamples = (await store.providerLatencies()).find((entry) => entry.origin === fastOrigin);
      assert.equal(fastSamples?.samples, 3, "each paid request folded its sample in");
    } finally {
      await store.close();
    }

    // The measurements survive a restart; with a 5% margin the fast provider (10% dearer) is beyond it.
    const reopened = await openSpendStore({ dataDir });
    try {
      assert.equal((await reopened.providerLatencies()).length, 2);
      const beyond = await routeAndPay(reopened, {
        channels: "never",
        routing: { preferFastestWithinPercent: 5 },
      });
      assert.equal(beyond.origin, slowOrigin, beyond.reason);
      assert.match(beyond.reason, /is faster \(\d+ ms TTFT\) but \d+% above the cheapest, beyond 5%/);
      const priceOnly = await routeAndPay(reopened, { channels: "never" });
      assert.equal(priceOnly.origin, slowOrigin, "without the routing key: price only, as before");
      assert.match(priceOnly.reason, /the cheapest for this request within policy/);
    } finally {
      await reopened.close();
    }
  });

  test("tollgate chat with the routing key in its policy file uses the stored measurements and prints why", async () => {
    // The spend store under dataDir holds both providers' times to first token from the test above.
    const policy = join(dataDir, "policy.yaml");
    await writeFile(policy, "routing:\n  preferFastestWithinPercent: 20\n");
    const run = await runCli(
      [
        "chat",
        "--gateway",
        slow.gateway.url,
        "--gateway",
        fast.gateway.url,
        "--model",
        mockModelId,
        "--max-tokens",
        "20",
        "--policy",
        policy,
        "say hello",
      ],
      { TOLLGATE_PRIVATE_KEY: devnet.accounts.buyers[1]!.privateKey, TOLLGATE_DATA_DIR: dataDir },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), mockCompletionText(6));
    assert.match(
      run.stderr,
      new RegExp(
        `provider: chose ${fast.gateway.url}/v1 \\(${mockModelId}\\): fastest within 20% of the cheapest: \\d+ ms TTFT vs \\d+ ms`,
      ),
    );
    assert.match(run.stderr, /paid \$[0-9.]+ of \$[0-9.]+ authorized/);
  });

  test("the routing key is validated: a negative margin is refused, naming the field", async () => {
    await assert.rejects(
      chooseProvider({
        gateways: [slow.gateway.url],
        models: [mockModelId],
        body,
        policy: { routing: { preferFastestWithinPercent: -5 } },
      }),
      /routing\.preferFastestWithinPercent/,
    );
  });
});
