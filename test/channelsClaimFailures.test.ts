// A claim the contract refuses for one channel never holds up the others': a payer that withdrew
// while the gateway was away (its escrow now holds less than its charges) is claimed for what the
// escrow holds, the shortfall is reported, and the other channels in the batch are claimed in full.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import type { PaymentRequirements } from "@x402/core/types";
import { BATCH_SETTLEMENT_DOMAIN, toClientEvmSigner, voucherTypes } from "@x402/evm";
import { BatchSettlementEvmScheme, computeChannelId } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  erc20Abi,
  type Hex,
  http,
  parseAbi,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { batchSettlementAbi } from "../src/chain/index.js";
import { type ChannelConfig, erc3009DepositArgs } from "../src/devnet/batchSettlementTesting.js";
import { dashboardChannelsOf, readGatewayDashboard, reconcileChannels } from "../src/gateway/index.js";
import { createLedger, createPgliteClient } from "../src/ledger/index.js";
import { captureLogger } from "../src/ledger/testkit/captureLogger.js";
import {
  BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
  channelTestConfig,
  depositAbi,
  testChannelSettlement,
} from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { parsePrometheusText, sumOf } from "./support/prometheusText.js";

let h: GatewayHarness;

/** A gateway and devnet of the suite's own: a payer's withdrawal moves the chain's clock 15 minutes on. */
function ownHarness() {
  before(async () => {
    h = await startGatewayHarness({ configure: channelTestConfig });
  });
  after(async () => {
    await h?.close();
  });
}

const url = () => `${h.gateway.url}/v1/chat/completions`;
const body = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 32,
});

/** A buyer whose channel was opened and charged by two requests through the official client. */
/** What the gateway's /metrics counts as claimed on its channels. */
async function claimedOnMetrics(): Promise<number> {
  return sumOf(
    parsePrometheusText(await (await fetch(h.gateway.metricsUrl!)).text()),
    "tollgate_channel_atomic_total",
    { network: h.devnet.network, kind: "claim" },
  );
}

async function chargedChannel() {
  const buyer = await h.devnet.createBuyer(100_000_000n);
  const { scheme, pay } = officialClient(buyer.privateKey);
  for (let i = 0; i < 2; i++) {
    const response = await pay(url(), chatRequest);
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
  return { buyer, config, channelId, charged, pay };
}

const chatRequest = { method: "POST", headers: { "content-type": "application/json" }, body };

/** The official client paying by channel with this key (a salt of its own opens another channel). */
function officialClient(privateKey: Hex, salt?: Hex) {
  const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
  const signer = toClientEvmSigner(privateKeyToAccount(privateKey), publicClient);
  const scheme = new BatchSettlementEvmScheme(signer, salt ? { salt } : undefined);
  const pay = wrapFetchWithPayment(
    fetch,
    x402Client.fromConfig({ schemes: [{ network: h.devnet.network, client: scheme }], spendControls: false }),
  );
  return { scheme, pay };
}

/** The payer sending its own transactions. */
const payerWallet = (privateKey: Hex) =>
  createWalletClient({
    account: privateKeyToAccount(privateKey),
    chain: anvil,
    transport: http(h.devnet.rpcUrl),
  });

const publicClient = () => createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });

/** A wallet's test USDC. */
const usdcOf = (owner: Hex) =>
  publicClient().readContract({
    address: h.devnet.contracts.usdc,
    abi: erc20Abi,
    functionName: "balanceOf",
    args: [owner],
  });

/** The channel's balance and claimed total on chain. */
async function onchain(channelId: Hex) {
  const [balance, totalClaimed] = await publicClient().readContract({
    address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
    abi: batchSettlementAbi,
    functionName: "channels",
    args: [channelId],
  });
  return { balance, totalClaimed };
}

/** The payer withdraws all but one atomic unit less than it was charged, and the gateway never claimed in time. */
async function withdrawBelowCharges(leaver: Awaited<ReturnType<typeof chargedChannel>>): Promise<bigint> {
  const escrow = (await onchain(leaver.channelId)).balance;
  const left = leaver.charged - 1n;
  const wallet = payerWallet(leaver.buyer.privateKey);
  const send = async (functionName: "initiateWithdraw" | "finalizeWithdraw", args: readonly unknown[]) => {
    const hash = await wallet.writeContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: batchSettlementAbi,
      functionName,
      args: args as never,
    });
    assert.equal((await publicClient().waitForTransactionReceipt({ hash })).status, "success", functionName);
  };
  await send("initiateWithdraw", [leaver.config, escrow - left]);
  const testClient = createTestClient({ chain: anvil, mode: "anvil", transport: http(h.devnet.rpcUrl) });
  await testClient.increaseTime({ seconds: 901 });
  await testClient.mine({ blocks: 1 });
  await send("finalizeWithdraw", [leaver.config]);
  assert.equal((await onchain(leaver.channelId)).balance, left);
  return left;
}

describe("claims the contract refuses", () => {
  ownHarness();
  test("a payer that withdrew while the gateway was away: the others are claimed in full, it for what its escrow holds", async () => {
    const honest = [await chargedChannel(), await chargedChannel()];
    const leaver = await chargedChannel();
    assert.ok(leaver.charged > 1n);
    const left = await withdrawBelowCharges(leaver);

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
    // Reconciling is not clean while the payer owes: the shortfall is a difference, not work for the next claim.
    const reconciled = await reconcileChannels({
      channels: h.gateway.ledger.channels,
      payments: h.gateway.ledger.payments,
      client: publicClient() as never,
      settlement: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      network: h.devnet.network,
      asset: h.devnet.contracts.usdc,
      payTo: h.devnet.accounts.payTo.address,
    });
    assert.deepEqual(
      reconciled.differences.filter((difference) => difference.kind === "channel_shortfall"),
      [
        {
          kind: "channel_shortfall",
          channelId: leaver.channelId.toLowerCase(),
          chargedAtomic: leaver.charged.toString(),
          balanceOnChainAtomic: left.toString(),
        },
      ],
    );
    assert.equal(reconciled.unclaimedAtomic, 0n, "nothing left for a claim to take");
    const samples = parsePrometheusText(await h.gateway.metrics.metrics());
    assert.equal(sumOf(samples, "tollgate_channel_shortfalls"), 1, "the operator's metrics show the debt");
  });

  test("a ledger holding no channel, while the contract paid payTo, does not reconcile clean", async () => {
    const empty = await createLedger(await createPgliteClient());
    try {
      const reconciled = await reconcileChannels({
        channels: empty.channels,
        payments: empty.payments,
        client: publicClient() as never,
        settlement: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
        network: h.devnet.network,
        asset: h.devnet.contracts.usdc,
        payTo: h.devnet.accounts.payTo.address,
        channelSettledOnChainAtomic: 5n,
      });
      assert.equal(reconciled.channelCount, 0);
      assert.deepEqual(
        reconciled.differences.map((difference) => difference.kind),
        ["settled_mismatch"],
      );
    } finally {
      await empty.close();
    }
  });
});

describe("a channel shortfall is a debt", () => {
  ownHarness();

  test("a payer whose escrow came up short owes: refused on a new channel before its deposit moves; once it deposits into its channel on chain, the next claim round takes the shortfall and it is served again", async () => {
    const leaver = await chargedChannel();
    const honest = await chargedChannel();
    await withdrawBelowCharges(leaver);
    const settlement = testChannelSettlement(h, { minClaimAtomic: 1n });
    await settlement.claim({ force: true });
    const owes = (payer: Hex) => h.gateway.ledger.payments.hasOpenDebt(h.devnet.network, payer.toLowerCase());
    assert.equal(await owes(leaver.buyer.address), true, "the shortfall is owed");
    assert.equal(await owes(honest.buyer.address), false);
    // The operator sees it: the dashboard counts the short channel and what its payer owes beyond the escrow.
    const dashboard = () =>
      readGatewayDashboard({
        ledger: h.gateway.ledger,
        listChannels: () => dashboardChannelsOf(h.gateway.ledger),
      });
    const shortView = await dashboard();
    assert.equal(shortView.figures.channelShortfalls, 1);
    assert.equal(shortView.figures.shortfallAtomic, "1", "charged less the escrow that was claimed");
    const listed = await dashboardChannelsOf(h.gateway.ledger);
    const statusOf = (channels: typeof listed, id: Hex) =>
      channels.find((c) => c.channelId === id.toLowerCase())?.status;
    assert.equal(statusOf(listed, leaver.channelId), "short");
    assert.equal(statusOf(listed, honest.channelId), "open");
    assert.match(
      shortView.sections.find((section) => section.id === "channels")?.html ?? "",
      /class="bad">short</,
    );

    // Another channel of the same payer: refused before its deposit is settled, nothing run.
    const walletBefore = await usdcOf(leaver.buyer.address);
    const inferencesBefore = h.backend.inferenceRequests.length;
    const other = officialClient(leaver.buyer.privateKey, `0x${"22".repeat(32)}`);
    const refused = await other.pay(url(), chatRequest);
    const refusedText = await refused.text();
    assert.equal(refused.status, 402, refusedText);
    const reason = decodePaymentRequiredHeader(refused.headers.get("payment-required")!).error;
    assert.match(reason ?? "", /^tollgate_payer_in_debt:/);
    assert.equal(h.backend.inferenceRequests.length, inferencesBefore, "no inference");
    assert.equal(await usdcOf(leaver.buyer.address), walletBefore, "no deposit moved");

    // The payer deposits what it owes and more into its own channel, straight on chain.
    const requestMax = 10_000_000n;
    const wallet = payerWallet(leaver.buyer.privateKey);
    const hash = await wallet.writeContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: depositAbi,
      functionName: "deposit",
      args: await erc3009DepositArgs(h.devnet, leaver.buyer, leaver.config as ChannelConfig, requestMax),
    });
    assert.equal((await publicClient().waitForTransactionReceipt({ hash })).status, "success");
    // The next claim round looks for it on chain, and claims the shortfall from it: nothing is owed.
    await settlement.claim({ force: true });
    assert.equal((await onchain(leaver.channelId)).totalClaimed, leaver.charged, "the shortfall is claimed");
    assert.equal(await owes(leaver.buyer.address), false, "the balance covers the charges again");
    const paidView = await dashboard();
    assert.equal(paidView.figures.channelShortfalls, 0);
    assert.equal(paidView.figures.shortfallAtomic, "0");
    assert.notEqual(statusOf(await dashboardChannelsOf(h.gateway.ledger), leaver.channelId), "short");
    const served = await leaver.pay(url(), chatRequest);
    assert.equal(served.status, 200, await served.clone().text());
    await served.text();
    const charged = (await h.gateway.ledger.channels.get(leaver.channelId))!.chargedAtomic;
    assert.ok(charged > leaver.charged);
    await settlement.claim({ force: true });
    assert.equal(
      (await onchain(leaver.channelId)).totalClaimed,
      charged,
      "the shortfall and the new charge are claimed",
    );
  });
});

describe("claims and settlements made outside this ledger", () => {
  ownHarness();

  /** payTo's own wallet: the receiver may claim a voucher and anyone may settle, straight on chain. */
  const receiverCalls = parseAbi([
    "function claim((((address payer, address payerAuthorizer, address receiver, address receiverAuthorizer, address token, uint40 withdrawDelay, bytes32 salt) channel, uint128 maxClaimableAmount) voucher, bytes signature, uint128 totalClaimed)[] voucherClaims)",
    "function settle(address receiver, address token)",
  ]);
  const receiverWallet = () =>
    createWalletClient({
      account: privateKeyToAccount(h.devnet.accounts.payTo.privateKey),
      chain: anvil,
      transport: http(h.devnet.rpcUrl),
    });
  const sent = async (hash: Hex) =>
    assert.equal((await publicClient().waitForTransactionReceipt({ hash })).status, "success");

  test("a channel claimed above this ledger's charges is reported; claims settled by another transaction are booked settled; a shutdown settles what it claimed though a claim failed", async () => {
    const honest = await chargedChannel();
    const elsewhere = await chargedChannel();
    // Vouchers this ledger never saw: its payer signed 500 more, and the receiver claimed them itself.
    const aboveAtomic = elsewhere.charged + 500n;
    const signature = await privateKeyToAccount(elsewhere.buyer.privateKey).signTypedData({
      domain: {
        ...BATCH_SETTLEMENT_DOMAIN,
        chainId: h.devnet.chainId,
        verifyingContract: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      },
      types: voucherTypes,
      primaryType: "Voucher",
      message: { channelId: elsewhere.channelId, maxClaimableAmount: aboveAtomic },
    });
    await sent(
      await receiverWallet().writeContract({
        address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
        abi: receiverCalls,
        functionName: "claim",
        args: [
          [
            {
              voucher: { channel: elsewhere.config as ChannelConfig, maxClaimableAmount: aboveAtomic },
              signature,
              totalClaimed: aboveAtomic,
            },
          ],
        ],
      }),
    );

    const log = captureLogger();
    const settlement = testChannelSettlement(h, { minClaimAtomic: 1n, logger: log.logger });
    await settlement.claim({ force: true });
    assert.equal((await onchain(honest.channelId)).totalClaimed, honest.charged);
    const reported = log.records.find((entry) => String(entry.msg).includes("never saw"));
    assert.equal(reported?.level, 50, "an error");
    assert.equal(reported?.channelId, elsewhere.channelId.toLowerCase());
    assert.equal(reported?.chargedAtomic, elsewhere.charged.toString());
    assert.equal(reported?.claimedOnChainAtomic, aboveAtomic.toString());

    // Anyone may settle: the receiver does, before the gateway's round.
    const payToBefore = await usdcOf(h.devnet.accounts.payTo.address);
    await sent(
      await receiverWallet().writeContract({
        address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
        abi: receiverCalls,
        functionName: "settle",
        args: [h.devnet.accounts.payTo.address, h.devnet.contracts.usdc],
      }),
    );
    assert.equal(await usdcOf(h.devnet.accounts.payTo.address), payToBefore + honest.charged + aboveAtomic);
    await settlement.settle();
    const booked = (await h.gateway.ledger.channels.get(honest.channelId))!;
    assert.equal(booked.settledAtomic, honest.charged, "booked settled, not failing every round");
    assert.ok(log.records.some((entry) => String(entry.msg).includes("already settled to payTo")));

    // A shutdown whose claims fail for one channel still settles the others it claimed.
    const more = await chargedChannel();
    const broken = await chargedChannel();
    await h.gateway.ledger.channels.update(broken.channelId, (current) => ({
      next: current && { ...current, signature: `0x${"11".repeat(65)}` },
      result: undefined,
    }));
    const beforeShutdown = await usdcOf(h.devnet.accounts.payTo.address);
    await settlement.stop({ flush: true });
    assert.equal((await onchain(more.channelId)).totalClaimed, more.charged);
    assert.equal((await onchain(broken.channelId)).totalClaimed, 0n, "its voucher cannot be claimed");
    assert.equal(await usdcOf(h.devnet.accounts.payTo.address), beforeShutdown + more.charged, "settled");
    assert.equal((await h.gateway.ledger.channels.get(more.channelId))!.settledAtomic, more.charged);
  });

  test("a claim a facilitator says landed, whose transaction did not claim the channel, is not booked claimed and is claimed again", async () => {
    const channel = await chargedChannel();
    // A facilitator answering a claim with success and a transaction that claimed nothing of it.
    const unrelated = (await h.devnet.createBuyer(1n)).privateKey;
    const wallet = payerWallet(unrelated);
    const other = await wallet.sendTransaction({ to: wallet.account.address, value: 0n });
    await sent(other);
    const lying = {
      ...h.gateway.facilitator,
      settle: async (...args: Parameters<typeof h.gateway.facilitator.settle>) => {
        const [payload, requirements] = args;
        if ((payload.payload as { type?: string }).type !== "claim")
          return h.gateway.facilitator.settle(payload, requirements);
        return { success: true, transaction: other, network: requirements.network };
      },
    };
    const log = captureLogger();
    const lied = testChannelSettlement(h, { minClaimAtomic: 1n, logger: log.logger, facilitator: lying });
    await lied.claim({ force: true });
    assert.equal((await h.gateway.ledger.channels.get(channel.channelId))!.totalClaimedAtomic, 0n);
    assert.ok(log.records.some((entry) => String(entry.msg).includes("is not booked claimed")));
    const honest = testChannelSettlement(h, { minClaimAtomic: 1n });
    // The earlier test's channel with a broken voucher still fails alone; this one is claimed beside it.
    await honest.claim({ force: true }).catch(() => undefined);
    assert.equal((await onchain(channel.channelId)).totalClaimed, channel.charged, "claimed for real");
    assert.equal(
      (await h.gateway.ledger.channels.get(channel.channelId))!.totalClaimedAtomic,
      channel.charged,
    );
  });

  test("a replica with another receiver-authorizer key sends no claim for channels naming this one's; their own key claims them", async () => {
    const channel = await chargedChannel();
    const sentClaims: unknown[] = [];
    const recording = {
      ...h.gateway.facilitator,
      settle: async (...args: Parameters<typeof h.gateway.facilitator.settle>) => {
        const [payload, requirements] = args;
        const inner = payload.payload as { type?: string; claims?: unknown[] };
        if (inner.type === "claim") sentClaims.push(...(inner.claims ?? []));
        return h.gateway.facilitator.settle(payload, requirements);
      },
    };
    const otherReplica = testChannelSettlement(h, {
      minClaimAtomic: 1n,
      facilitator: recording,
      receiverAuthorizerKey: generatePrivateKey(),
    });
    await otherReplica.claim({ force: true });
    assert.deepEqual(sentClaims, [], "no claim signed by a key the channels do not name");
    assert.equal((await onchain(channel.channelId)).totalClaimed, 0n);
    assert.equal((await h.gateway.ledger.channels.get(channel.channelId))!.totalClaimedAtomic, 0n);

    const own = testChannelSettlement(h, { minClaimAtomic: 1n, facilitator: recording });
    // The first test's channel with a broken voucher still fails alone; this one is claimed beside it.
    await own.claim({ force: true }).catch(() => undefined);
    assert.ok(sentClaims.length > 0);
    assert.equal((await onchain(channel.channelId)).totalClaimed, channel.charged, "claimed by its own key");
  });
});

describe("a claim or a settlement the chain takes back", () => {
  ownHarness();

  /**
   * Takes the newest block back: the new branch holds another transaction of the facilitator's key at the
   * nonce of its last one, so that transaction can never land again.
   */
  async function reorgFacilitatorsLast(): Promise<void> {
    const facilitatorKey = privateKeyToAccount(h.devnet.accounts.facilitator.privateKey);
    const nonce = (await publicClient().getTransactionCount({ address: facilitatorKey.address })) - 1;
    const replacement = await facilitatorKey.signTransaction({
      chainId: h.devnet.chainId,
      type: "eip1559",
      to: facilitatorKey.address,
      value: 0n,
      nonce,
      gas: 21_000n,
      maxFeePerGas: 10_000_000_000n,
      maxPriorityFeePerGas: 1n,
    });
    const testClient = createTestClient({ chain: anvil, mode: "anvil", transport: http(h.devnet.rpcUrl) });
    await testClient.request({ method: "anvil_reorg" as never, params: [1, [[replacement, 0]]] as never });
  }

  test("a settlement to payTo reorganised away is sent again by the next settle round, though the ledger has nothing owed", async () => {
    const channel = await chargedChannel();
    const settlement = testChannelSettlement(h, { minClaimAtomic: 1n });
    await settlement.claim({ force: true });
    const payToBefore = await usdcOf(h.devnet.accounts.payTo.address);
    await settlement.settle();
    assert.equal(await usdcOf(h.devnet.accounts.payTo.address), payToBefore + channel.charged);

    await reorgFacilitatorsLast();
    assert.equal(
      await usdcOf(h.devnet.accounts.payTo.address),
      payToBefore,
      "the chain took the transfer back",
    );
    await settlement.settle();
    assert.equal(
      await usdcOf(h.devnet.accounts.payTo.address),
      payToBefore + channel.charged,
      "payTo receives the claims again",
    );
    assert.equal((await h.gateway.ledger.channels.get(channel.channelId))!.settledAtomic, channel.charged);
  });

  test("a claim reorganised away after its receipt was seen is not booked settled: the next rounds claim it again and payTo receives it", async () => {
    const lost = await chargedChannel();
    const settlement = testChannelSettlement(h, { minClaimAtomic: 1n });
    await settlement.claim({ force: true });
    assert.equal((await onchain(lost.channelId)).totalClaimed, lost.charged);
    assert.equal((await h.gateway.ledger.channels.get(lost.channelId))!.totalClaimedAtomic, lost.charged);

    // The block holding the claim is reorganised away, its transaction with it.
    await reorgFacilitatorsLast();
    assert.equal((await onchain(lost.channelId)).totalClaimed, 0n, "the chain holds no claim of it");

    // Another channel is charged and claimed in the meantime; the settle round sweeps what the chain holds.
    const other = await chargedChannel();
    const payToBefore = await usdcOf(h.devnet.accounts.payTo.address);
    await settlement.claim({ force: true }).catch(() => undefined);
    await settlement.settle().catch(() => undefined);
    await settlement.claim({ force: true }).catch(() => undefined);
    await settlement.settle().catch(() => undefined);

    assert.equal((await onchain(lost.channelId)).totalClaimed, lost.charged, "claimed again");
    assert.equal(
      await usdcOf(h.devnet.accounts.payTo.address),
      payToBefore + other.charged + lost.charged,
      "payTo received both channels' charges",
    );
    const booked = (await h.gateway.ledger.channels.get(lost.channelId))!;
    assert.equal(booked.settledAtomic, lost.charged);
    const report = await reconcileChannels({
      channels: h.gateway.ledger.channels,
      payments: h.gateway.ledger.payments,
      client: publicClient() as never,
      settlement: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      network: h.devnet.network,
      asset: h.devnet.contracts.usdc,
      payTo: h.devnet.accounts.payTo.address,
    });
    assert.deepEqual(report.differences, []);
  });
});

describe("a claim that landed while its answer was lost", () => {
  ownHarness();

  test("is booked claimed at the next round from the chain, with no claim sent again: the facilitator refuses one that would move nothing", async () => {
    const channel = await chargedChannel();
    // The claim lands; its answer never reaches the gateway.
    const losing = {
      ...h.gateway.facilitator,
      settle: async (...args: Parameters<typeof h.gateway.facilitator.settle>) => {
        const settled = await h.gateway.facilitator.settle(...args);
        if ((args[0].payload as { type?: string }).type === "claim" && settled.success)
          throw new Error("connection reset after the claim was sent");
        return settled;
      },
    };
    await assert.rejects(
      testChannelSettlement(h, { minClaimAtomic: 1n, facilitator: losing }).claim({ force: true }),
    );
    assert.equal((await onchain(channel.channelId)).totalClaimed, channel.charged, "the claim landed");
    assert.equal((await h.gateway.ledger.channels.get(channel.channelId))!.totalClaimedAtomic, 0n);
    const facilitatorAddress = h.devnet.accounts.facilitator.address;
    const sentBefore = await publicClient().getTransactionCount({ address: facilitatorAddress });
    await testChannelSettlement(h, { minClaimAtomic: 1n }).claim({ force: true });
    assert.equal(
      (await h.gateway.ledger.channels.get(channel.channelId))!.totalClaimedAtomic,
      channel.charged,
      "booked claimed",
    );
    assert.equal(
      await publicClient().getTransactionCount({ address: facilitatorAddress }),
      sentBefore,
      "no claim sent again",
    );
    assert.equal((await onchain(channel.channelId)).totalClaimed, channel.charged);
  });

  test("booked from the chain, the claim is counted on /metrics as a landed claim is", async () => {
    const channel = await chargedChannel();
    const losing = {
      ...h.gateway.facilitator,
      settle: async (...args: Parameters<typeof h.gateway.facilitator.settle>) => {
        const settled = await h.gateway.facilitator.settle(...args);
        if ((args[0].payload as { type?: string }).type === "claim" && settled.success)
          throw new Error("connection reset after the claim was sent");
        return settled;
      },
    };
    await assert.rejects(
      testChannelSettlement(h, { minClaimAtomic: 1n, facilitator: losing }).claim({ force: true }),
    );
    assert.equal((await onchain(channel.channelId)).totalClaimed, channel.charged, "the claim landed");
    const before = await claimedOnMetrics();
    // The gateway's own claim round books it from the chain, and its metrics count the claim.
    await h.gateway.channels!.settlement.claim({ force: true });
    assert.equal(
      (await h.gateway.ledger.channels.get(channel.channelId))!.totalClaimedAtomic,
      channel.charged,
    );
    assert.equal(await claimedOnMetrics(), before + Number(channel.charged));
    // Booked once: another round counts nothing more.
    await h.gateway.channels!.settlement.claim({ force: true });
    assert.equal(await claimedOnMetrics(), before + Number(channel.charged));
  });

  test("a landed claim whose booking throws is counted on /metrics once, by the round that books it", async () => {
    const channel = await chargedChannel();
    const before = await claimedOnMetrics();
    const store = h.gateway.ledger.channels;
    const update = store.update.bind(store);
    let failOnce = true;
    // The ledger's write of the claimed total fails once, after the claim's transaction landed.
    store.update = (async (...args: Parameters<typeof update>) => {
      const [channelId, change] = args;
      const current = await store.get(channelId);
      const planned = change(current);
      if (
        failOnce &&
        planned.next &&
        current &&
        planned.next.totalClaimedAtomic > current.totalClaimedAtomic
      ) {
        failOnce = false;
        throw new Error("connection to the ledger lost");
      }
      return update(...args);
    }) as typeof store.update;
    try {
      await h.gateway.channels!.settlement.claim({ force: true }).catch(() => undefined);
    } finally {
      store.update = update;
    }
    assert.equal(failOnce, false, "the booking failed");
    assert.equal((await onchain(channel.channelId)).totalClaimed, channel.charged, "the claim landed");
    await h.gateway.channels!.settlement.claim({ force: true });
    assert.equal(
      (await h.gateway.ledger.channels.get(channel.channelId))!.totalClaimedAtomic,
      channel.charged,
      "booked from the chain",
    );
    assert.equal(await claimedOnMetrics(), before + Number(channel.charged), "counted once");
  });

  test("booked from the chain alone, a channel claimed there above this ledger's charges is reported as an error", async () => {
    const channel = await chargedChannel();
    await testChannelSettlement(h, { minClaimAtomic: 1n }).claim({ force: true });
    assert.equal((await onchain(channel.channelId)).totalClaimed, channel.charged);
    // The ledger is replaced by one that saw 100 less of this channel's vouchers.
    const lowerAtomic = channel.charged - 100n;
    await h.gateway.ledger.channels.update(channel.channelId, (current) => ({
      next: current && { ...current, chargedAtomic: lowerAtomic, totalClaimedAtomic: 0n, settledAtomic: 0n },
      result: undefined,
    }));
    const log = captureLogger();
    await testChannelSettlement(h, { minClaimAtomic: 1n, logger: log.logger }).claim({ force: true });
    assert.equal((await h.gateway.ledger.channels.get(channel.channelId))!.totalClaimedAtomic, lowerAtomic);
    // Observed before: only a warning that it was claimed as far as it was charged.
    const reported = log.records.find((entry) => String(entry.msg).includes("never saw"));
    assert.equal(reported?.level, 50, "an error");
    assert.equal(reported?.chargedAtomic, lowerAtomic.toString());
    assert.equal(reported?.claimedOnChainAtomic, channel.charged.toString());
  });
});
