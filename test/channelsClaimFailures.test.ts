// A claim the contract refuses for one channel never holds up the others': a payer that withdrew
// while the gateway was away (its escrow now holds less than its charges) is claimed for what the
// escrow holds, the shortfall is reported, and the other channels in the batch are claimed in full.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import type { PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme, computeChannelId } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, createTestClient, createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { batchSettlementAbi } from "../src/chain/index.js";
import { captureLogger } from "../src/ledger/testkit/captureLogger.js";
import {
  BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
  channelTestConfig,
  testChannelSettlement,
} from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

let h: GatewayHarness;

before(async () => {
  h = await startGatewayHarness({ configure: channelTestConfig });
});

after(async () => {
  await h?.close();
});

const url = () => `${h.gateway.url}/v1/chat/completions`;
const body = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 32,
});

/** A buyer whose channel was opened and charged by two requests through the official client. */
async function chargedChannel() {
  const buyer = await h.devnet.createBuyer(100_000_000n);
  const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
  const scheme = new BatchSettlementEvmScheme(
    toClientEvmSigner(privateKeyToAccount(buyer.privateKey), publicClient),
  );
  const pay = wrapFetchWithPayment(
    fetch,
    x402Client.fromConfig({ schemes: [{ network: h.devnet.network, client: scheme }], spendControls: false }),
  );
  for (let i = 0; i < 2; i++) {
    const response = await pay(url(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
  }
  const required = decodePaymentRequiredHeader(
    (
      await fetch(url(), { method: "POST", headers: { "content-type": "application/json" }, body })
    ).headers.get("payment-required")!,
  );
  const offer = required.accepts.find(
    (accept) => accept.scheme === "batch-settlement",
  ) as PaymentRequirements;
  const config = scheme.buildChannelConfig(offer);
  const channelId = computeChannelId(config, h.devnet.network);
  const charged = (await h.gateway.ledger.channels.get(channelId))!.chargedAtomic;
  return { buyer, config, channelId, charged };
}

describe("claims the contract refuses", () => {
  test("a payer that withdrew while the gateway was away: the others are claimed in full, it for what its escrow holds", async () => {
    const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
    const onchain = async (channelId: `0x${string}`) => {
      const [balance, totalClaimed] = await publicClient.readContract({
        address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
        abi: batchSettlementAbi,
        functionName: "channels",
        args: [channelId],
      });
      return { balance, totalClaimed };
    };
    const honest = [await chargedChannel(), await chargedChannel()];
    const leaver = await chargedChannel();
    assert.ok(leaver.charged > 1n);
    // The leaver withdraws all but one atomic unit less than it was charged, and the gateway never
    // claimed in time: after the delay the escrow holds less than the charges.
    const escrow = (await onchain(leaver.channelId)).balance;
    const left = leaver.charged - 1n;
    const wallet = createWalletClient({
      account: privateKeyToAccount(leaver.buyer.privateKey),
      chain: anvil,
      transport: http(h.devnet.rpcUrl),
    });
    const send = async (functionName: "initiateWithdraw" | "finalizeWithdraw", args: readonly unknown[]) => {
      const hash = await wallet.writeContract({
        address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
        abi: batchSettlementAbi,
        functionName,
        args: args as never,
      });
      assert.equal((await publicClient.waitForTransactionReceipt({ hash })).status, "success", functionName);
    };
    await send("initiateWithdraw", [leaver.config, escrow - left]);
    const testClient = createTestClient({ chain: anvil, mode: "anvil", transport: http(h.devnet.rpcUrl) });
    await testClient.increaseTime({ seconds: 901 });
    await testClient.mine({ blocks: 1 });
    await send("finalizeWithdraw", [leaver.config]);
    assert.equal((await onchain(leaver.channelId)).balance, left);

    const log = captureLogger();
    const settlement = testChannelSettlement(h, { minClaimAtomic: 1n, logger: log.logger });
    const claims = await settlement.claim({ force: true });
    for (const channel of honest)
      assert.equal((await onchain(channel.channelId)).totalClaimed, channel.charged, "claimed in full");
    assert.equal((await onchain(leaver.channelId)).totalClaimed, left, "what the escrow holds");
    const claimedAtomic = claims.reduce((sum, claim) => sum + claim.claimedAtomic, 0n);
    assert.equal(claimedAtomic, honest[0]!.charged + honest[1]!.charged + left);
    const shortfall = log.records.find((entry) => String(entry.msg).includes("escrow holds less"));
    assert.equal(shortfall?.shortfallAtomic, "1", "the shortfall is reported");
    // The ledger keeps what was charged, so reconcile shows the shortfall; the channel is not tried again.
    const booked = (await h.gateway.ledger.channels.get(leaver.channelId))!;
    assert.equal(booked.chargedAtomic, leaver.charged);
    assert.equal(booked.totalClaimedAtomic, left);
    assert.deepEqual(await settlement.claim({ force: true }), []);
  });
});
