// A model the operator sells for nothing (every price 0), on a gateway that offers channels: a request
// whose maximum is 0 is no reason to open a channel, which would lock the buyer's money and cost the
// seller a deposit transaction for nothing. Such a request is offered no channel, and served free.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { createPayingFetch } from "../src/buyer/index.js";
import { channelTestConfig } from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { finalRow } from "./support/paidRequests.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness({
    configure: (input) => {
      const config = channelTestConfig(input);
      return {
        ...config,
        models: config.models.map((model) => ({ ...model, inputPrice: "0", outputPrice: "0" })),
      };
    },
  });
});
after(async () => {
  await h?.close();
});

const body = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 32,
});
const url = () => `${h.gateway.url}/v1/chat/completions`;

test("a free model's request is offered no channel: a channel-only buyer deposits nothing, and an upto buyer is served for 0", async () => {
  const unpaid = await fetch(url(), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  assert.equal(unpaid.status, 402);
  const required = decodePaymentRequiredHeader(unpaid.headers.get("payment-required")!);
  assert.deepEqual(
    required.accepts.map((accept) => [accept.scheme, accept.amount]),
    required.accepts
      .filter((accept) => accept.scheme !== "batch-settlement")
      .map((accept) => [accept.scheme, "0"]),
    "every offer is for 0, and none is a channel",
  );
  assert.ok(required.accepts.length > 0);

  // The official channel client finds nothing it can pay with, and sends no deposit.
  const buyer = await h.devnet.createBuyer(100_000_000n);
  const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
  const blockBefore = await publicClient.getBlockNumber({ cacheTime: 0 });
  const channelOnly = wrapFetchWithPayment(
    fetch,
    x402Client.fromConfig({
      schemes: [
        {
          network: h.devnet.network,
          client: new BatchSettlementEvmScheme(
            toClientEvmSigner(privateKeyToAccount(buyer.privateKey), publicClient),
          ),
        },
      ],
      spendControls: false,
    }),
  );
  await assert.rejects(
    channelOnly(url(), { method: "POST", headers: { "content-type": "application/json" }, body }),
    "a channel-only client has no offer to pay",
  );
  assert.equal(await publicClient.getBlockNumber({ cacheTime: 0 }), blockBefore, "no deposit was sent");
  assert.equal((await h.gateway.ledger.channels.list()).length, 0, "no channel was opened");

  // Tollgate's buyer pays it by upto, for nothing.
  const pay = createPayingFetch({ privateKey: buyer.privateKey, dataDir: "memory://" });
  const paid = await pay(url(), { method: "POST", headers: { "content-type": "application/json" }, body });
  assert.equal(paid.status, 200, await paid.clone().text());
  const row = await finalRow(h);
  assert.equal(row.scheme, "upto");
  assert.equal(row.chargeAtomic, 0n);
});
