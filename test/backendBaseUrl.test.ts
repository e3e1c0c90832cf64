import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { isTollgateError } from "../src/errors/index.js";
import type { GatewayConfigInput } from "../src/gateway/index.js";
import { captureLogger } from "../src/ledger/testkit/captureLogger.js";
import { officialPayingFetch, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

let devnet: Devnet;
before(async () => {
  devnet = await startDevnet({ buyers: 1 });
});
after(async () => {
  await devnet?.stop();
});

/** The config with the mock model's backend.baseUrl rewritten from the mock's `.../v1`. */
const withBaseUrl =
  (rewrite: (baseUrl: string) => string) =>
  (input: GatewayConfigInput): GatewayConfigInput => ({
    ...input,
    models: input.models.map((model) => ({
      ...model,
      backend: { ...model.backend, baseUrl: rewrite(model.backend.baseUrl) },
    })),
  });

const chatBody = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "hello there" }],
  max_tokens: 16,
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === "object" && address ? address.port : 0;
}

describe("a model's backend.baseUrl", () => {
  test("without the /v1 its backend answers under is refused at start, naming the key and the URL to write", async () => {
    await assert.rejects(
      startGatewayHarness({ devnet, configure: withBaseUrl((url) => url.replace(/\/v1$/, "")) }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        /^config key models\.0\.backend\.baseUrl: http:\/\/127\.0\.0\.1:\d+ answers 404 at \/models while http:\/\/127\.0\.0\.1:\d+\/v1\/models answers: .*set backend\.baseUrl to http:\/\/127\.0\.0\.1:\d+\/v1$/.test(
          error.shortMessage,
        ),
    );
  });

  test("whose backend answers a paid request 404 charges its buyer nothing: the payment fails, no transaction", async () => {
    const { logger, records } = captureLogger();
    // No /models and no /v1/models under it: the gateway starts, and says what it found.
    const h = await startGatewayHarness({
      devnet,
      logger,
      configure: withBaseUrl((url) => `${url}/missing`),
    });
    try {
      const buyer = await h.devnet.createBuyer(1_000_000n);
      const before = await h.devnet.usdcBalance(buyer.address);
      const response = await officialPayingFetch(buyer.privateKey, h.devnet.network)(
        `${h.gateway.url}/v1/chat/completions`,
        { method: "POST", headers: { "content-type": "application/json" }, body: chatBody },
      );
      await response.text();
      assert.equal(response.status, 404);
      assert.equal(response.headers.get("payment-response"), null, "no receipt: nothing settled");
      const [row] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(row?.payer.toLowerCase(), buyer.address.toLowerCase());
      assert.equal(row?.status, "failed");
      assert.equal(row?.transaction ?? "", "");
      assert.equal(await h.devnet.usdcBalance(buyer.address), before, "the buyer's funds are untouched");
      assert.ok(
        records.some(
          (record) =>
            record.level === 40 &&
            /config key models\.0\.backend\.baseUrl: .*answers 404 at \/models/.test(String(record.msg)),
        ),
        "a warning at start names the key",
      );
    } finally {
      await h.close();
    }
  });

  test("whose backend is down at start does not keep the gateway from starting", async () => {
    const { logger, records } = captureLogger();
    const port = await closedPort();
    const h = await startGatewayHarness({
      devnet,
      logger,
      configure: withBaseUrl(() => `http://127.0.0.1:${port}/v1`),
    });
    try {
      assert.ok(h.gateway.url.startsWith("http://127.0.0.1:"));
      assert.ok(
        records.some(
          (record) =>
            record.level === 40 &&
            /config key models\.0\.backend\.baseUrl: .*did not answer/.test(String(record.msg)),
        ),
        "a warning names the key",
      );
    } finally {
      await h.close();
    }
  });
});
