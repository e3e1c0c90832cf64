// The official x402 client (@x402/core + @x402/evm's batch-settlement client + @x402/fetch) pays a
// Tollgate gateway through a payment channel on the devnet: one deposit, then many requests with
// no transaction, claims and a settle to payTo, and a cooperative refund of the rest.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import OpenAI from "openai";
import { createPublicClient, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { batchSettlementAbi } from "../src/chain/index.js";
import { type BillingEvent, reconcileChannels, reconcileLedger } from "../src/gateway/index.js";
import { BATCH_SETTLEMENT_ADDRESS_FOR_TESTS, channelTestConfig } from "./support/channelFixtures.js";
import { expectedCharge, type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { parsePrometheusText, sumOf } from "./support/prometheusText.js";

let h: GatewayHarness;
const channelEvents: BillingEvent[] = [];

before(async () => {
  h = await startGatewayHarness({
    configure: channelTestConfig,
    onBillingEvent: (event) => {
      if (event.type.startsWith("channel_")) channelEvents.push(event);
    },
  });
});

after(async () => {
  await h?.close();
});

/** The official client, paying only by channel, for a fresh funded buyer. */
async function officialChannelBuyer(usdcAtomic = 100_000_000n) {
  const buyer = await h.devnet.createBuyer(usdcAtomic);
  const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
  const signer = toClientEvmSigner(privateKeyToAccount(buyer.privateKey), publicClient);
  const scheme = new BatchSettlementEvmScheme(signer);
  const client = x402Client.fromConfig({
    schemes: [{ network: h.devnet.network, client: scheme }],
    spendControls: false,
  });
  return { buyer, scheme, publicClient, fetch: wrapFetchWithPayment(fetch, client) as typeof fetch };
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: mockModelId,
  messages: [{ role: "user", content }],
  max_tokens: 64,
  ...extra,
});

type ChannelReceipt = {
  success: boolean;
  transaction: string;
  amount?: string;
  extra?: {
    chargedAmount?: string;
    channelState?: { channelId: string; chargedCumulativeAmount: string; balance: string };
  };
};

const chainClient = () => createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });

/** Transactions mined in blocks (from, to]. */
async function transactionsBetween(from: bigint, to: bigint): Promise<number> {
  let count = 0;
  for (let block = from + 1n; block <= to; block++) {
    count += (await chainClient().getBlock({ blockNumber: block })).transactions.length;
  }
  return count;
}

describe("a gateway paid through a payment channel by the official x402 client", () => {
  test("one deposit, then JSON and streamed requests with no transaction; claims and settle pay payTo exactly; refund returns the rest", async () => {
    const { buyer, scheme, publicClient, fetch: payingFetch } = await officialChannelBuyer();
    const startBalance = await h.devnet.usdcBalance(buyer.address);
    const payTo = h.devnet.accounts.payTo.address;
    const payToBefore = await h.devnet.usdcBalance(payTo);
    const url = `${h.gateway.url}/v1/chat/completions`;
    const charges: bigint[] = [];
    let channelId: Hex | undefined;

    const payJson = async (content: string) => {
      const response = await payingFetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chat(content)),
      });
      assert.equal(response.status, 200, await response.clone().text());
      const body = (await response.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
      const receipt = decodePaymentResponseHeader(
        response.headers.get("payment-response")!,
      ) as ChannelReceipt;
      assert.equal(receipt.success, true);
      const charged = BigInt(receipt.extra?.chargedAmount ?? "-1");
      assert.equal(charged, expectedCharge(body.usage.prompt_tokens, body.usage.completion_tokens));
      channelId = receipt.extra?.channelState?.channelId as Hex;
      charges.push(charged);
      const sum = charges.reduce((a, b) => a + b, 0n);
      assert.equal(BigInt(receipt.extra?.channelState?.chargedCumulativeAmount ?? "-1"), sum);
      return receipt;
    };

    const first = await payJson("open the channel");
    assert.match(first.transaction, /^0x[0-9a-f]{64}$/, "the first request carries the deposit");
    const afterDeposit = await chainClient().getBlockNumber();

    for (let i = 0; i < 20; i++) {
      const receipt = await payJson(`request number ${i} ${"word ".repeat(i)}`);
      assert.equal(receipt.transaction, "", "a voucher sends no transaction");
    }

    // Streams through the official openai client: the receipt is the last event; the client resyncs
    // through the corrective 402 on its next request, never overcharged.
    const openai = new OpenAI({
      apiKey: "unused",
      baseURL: `${h.gateway.url}/v1`,
      fetch: payingFetch,
      maxRetries: 0,
    });
    for (let i = 0; i < 3; i++) {
      const stream = await openai.chat.completions.create({ ...chat(`stream ${i}`), stream: true } as never);
      let receipt:
        | {
            amount: string;
            maxAmount: string;
            usage: { prompt_tokens: number; completion_tokens: number };
            channel?: { chargedCumulativeAmount: string; balance: string };
          }
        | undefined;
      for await (const chunk of stream as unknown as AsyncIterable<Record<string, unknown>>) {
        if ("x402_receipt" in chunk) receipt = chunk.x402_receipt as typeof receipt;
      }
      assert.ok(receipt, "the stream ends with a receipt");
      const charged = BigInt(receipt.amount);
      assert.equal(charged, expectedCharge(receipt.usage.prompt_tokens, receipt.usage.completion_tokens));
      assert.ok(charged <= BigInt(receipt.maxAmount));
      charges.push(charged);
      assert.equal(
        receipt.channel?.chargedCumulativeAmount,
        charges.reduce((a, b) => a + b, 0n).toString(),
        "the final event carries the channel's charged total",
      );
      assert.ok(BigInt(receipt.channel?.balance ?? "0") > 0n);
    }
    await payJson("after the streams");

    const beforeClaim = await chainClient().getBlockNumber();
    assert.equal(await transactionsBetween(afterDeposit, beforeClaim), 0, "no transaction after the deposit");
    assert.ok(channelId);

    const total = charges.reduce((a, b) => a + b, 0n);
    const rows = (await h.ledger.payments.recent({ limit: 100 })).filter(
      (row) => row.scheme === "batch-settlement",
    );
    assert.equal(rows.length, charges.length, "one ledger row per request");
    assert.equal(
      rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n),
      total,
    );

    const channels = h.gateway.channels;
    assert.ok(channels);
    const claims = await channels.settlement.claim({ force: true });
    assert.equal(claims.length, 1);
    await channels.settlement.settle();
    const [balance, totalClaimed] = await publicClient.readContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: batchSettlementAbi,
      functionName: "channels",
      args: [channelId],
    });
    assert.equal(totalClaimed, total, "claimed on chain = charged");
    assert.equal(await h.devnet.usdcBalance(payTo), payToBefore + total, "payTo rose by exactly the charges");
    // The money's path told as events: one deposit, then the claim and the settle of exactly the charges.
    const moved = (type: string) =>
      channelEvents
        .filter((event) => event.type === type && "channelId" in event && event.channelId === channelId)
        .reduce((sum, event) => sum + ("amountAtomic" in event ? event.amountAtomic : 0n), 0n);
    assert.equal(channelEvents.filter((event) => event.type === "channel_deposit").length, 1);
    assert.ok(moved("channel_deposit") > total);
    assert.equal(moved("channel_claim"), total);
    assert.equal(moved("channel_settle"), total);

    // Reconciled: charges per channel = its rows = claimed on chain; settled on chain = the transfers to payTo.
    const reconcile = async () => {
      const client = chainClient() as never;
      const ledgerSide = await reconcileLedger({
        payments: h.ledger.payments,
        client,
        network: h.devnet.network,
        asset: h.devnet.contracts.usdc,
        payTo,
        channelSettlement: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      });
      const channelSide = await reconcileChannels({
        channels: h.ledger.channels,
        payments: h.ledger.payments,
        client,
        settlement: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
        network: h.devnet.network,
        asset: h.devnet.contracts.usdc,
        payTo,
        channelSettledOnChainAtomic: ledgerSide.chain.channelSettledAtomic,
      });
      return { ledgerSide, channelSide };
    };
    const clean = await reconcile();
    assert.deepEqual(clean.ledgerSide.differences, []);
    assert.deepEqual(clean.channelSide.differences, []);
    assert.equal(clean.channelSide.claimedOnChainAtomic, total);
    assert.equal(clean.ledgerSide.chain.channelSettledAtomic, total);
    assert.equal(clean.channelSide.unclaimedAtomic, 0n);

    // A second claim finds nothing new to claim.
    assert.deepEqual(await channels.settlement.claim({ force: true }), []);

    await scheme.refund(`${h.gateway.url}/v1/channels/refund`);
    assert.equal(
      await h.devnet.usdcBalance(buyer.address),
      startBalance - total,
      "the refund returns the rest",
    );
    const [balanceAfter] = await publicClient.readContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: batchSettlementAbi,
      functionName: "channels",
      args: [channelId],
    });
    assert.ok(balance > balanceAfter);
    assert.equal(
      balanceAfter,
      totalClaimed,
      "what stays in the channel is what was claimed, nothing of the payer's",
    );
    // The refund is told too, and counted beside the deposits: deposited = refunded + charged.
    assert.equal(moved("channel_refund"), moved("channel_deposit") - total);
    const metrics = parsePrometheusText(await (await fetch(`${h.gateway.url}/metrics`)).text());
    const counted = (kind: string) => sumOf(metrics, "tollgate_channel_atomic_total", { kind });
    assert.equal(counted("refund"), Number(moved("channel_deposit") - total));
  });
});
