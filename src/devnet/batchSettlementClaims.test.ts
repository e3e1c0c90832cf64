// Deposits, claims and settle on our x402 batch-settlement contract, on a real anvil.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { computeChannelId } from "@x402/evm/batch-settlement/client";
import { type Hex, parseEventLogs } from "viem";
import { type ChannelDevnet, freshAccount, startChannelDevnet } from "./batchSettlementTesting.js";

let net: ChannelDevnet;

before(async () => {
  net = await startChannelDevnet();
});

after(async () => {
  await net?.devnet.stop();
});

describe("deposit", () => {
  test("the channel id is the @x402/evm EIP-712 hash of the config", async () => {
    const { config } = await net.newChannel();
    assert.equal(await net.read("getChannelId", [config]), computeChannelId(config, net.devnet.chainId));
  });

  test("an ERC-3009 receiveWithAuthorization deposit funds the channel and emits ChannelCreated once", async () => {
    const { payer, config, channelId } = await net.newChannel();
    const first = await net.send(
      net.relayer,
      net.call("deposit", await net.erc3009Deposit(payer, config, 5_000n)),
    );
    const second = await net.send(
      net.relayer,
      net.call("deposit", await net.erc3009Deposit(payer, config, 2_000n)),
    );
    assert.deepEqual(await net.channelOf(channelId), { balance: 7_000n, totalClaimed: 0n });
    const created = (r: typeof first) =>
      parseEventLogs({ abi: net.abi, logs: r.logs, eventName: "ChannelCreated" });
    assert.equal(created(first).length, 1);
    assert.equal(created(second).length, 0);
    assert.equal(await net.balanceOf(config.token, net.devnet.contracts.erc3009DepositCollector), 0n);
  });

  test("a Permit2 deposit with the DepositWitness funds the channel", async () => {
    const { payer, config, channelId } = await net.newChannel();
    await net.send(net.relayer, net.call("deposit", await net.permit2Deposit(payer, config, 4_000n)));
    assert.deepEqual(await net.channelOf(channelId), { balance: 4_000n, totalClaimed: 0n });
  });

  test("a Permit2 signature for another channel cannot fund this one", async () => {
    const { payer, config } = await net.newChannel();
    const other = await net.newChannel();
    const args = await net.permit2Deposit(payer, config, 4_000n, other.channelId);
    assert.equal(await net.revertOf(net.relayer.address, "deposit", args), "InvalidSigner");
  });

  test("an ERC-3009 authorization is spent once: replaying the deposit is refused", async () => {
    const { payer, config } = await net.newChannel();
    const args = await net.erc3009Deposit(payer, config, 1_000n);
    await net.send(net.relayer, net.call("deposit", args));
    assert.match(await net.revertOf(net.relayer.address, "deposit", args), /authorization is used/);
  });

  test("refuses a withdraw delay outside 15 minutes to 30 days, and a zero receiver authorizer", async () => {
    const short = await net.newChannel({ withdrawDelay: 899 });
    const shortArgs = await net.erc3009Deposit(short.payer, short.config, 1_000n);
    assert.equal(await net.revertOf(net.relayer.address, "deposit", shortArgs), "WithdrawDelayOutOfRange");
    const long = await net.newChannel({ withdrawDelay: 2_592_001 });
    const longArgs = await net.erc3009Deposit(long.payer, long.config, 1_000n);
    assert.equal(await net.revertOf(net.relayer.address, "deposit", longArgs), "WithdrawDelayOutOfRange");
    const noAuth = await net.newChannel({ receiverAuthorizer: "0x0000000000000000000000000000000000000000" });
    const noAuthArgs = await net.erc3009Deposit(noAuth.payer, noAuth.config, 1_000n);
    assert.equal(await net.revertOf(net.relayer.address, "deposit", noAuthArgs), "ZeroAddress");
  });

  test("the collectors only take calls from the batch settlement contract", async () => {
    const { payer, config, channelId } = await net.newChannel();
    const [, , collector, data] = await net.erc3009Deposit(payer, config, 1_000n);
    const collectAbi = net.artifacts.ERC3009DepositCollector.abi;
    await assert.rejects(
      net.publicClient.simulateContract({
        account: net.relayer.address,
        address: collector,
        abi: collectAbi,
        functionName: "collect",
        args: [payer.address, config.token, 1_000n, channelId, data],
      }),
      /OnlyBatchSettlement/,
    );
  });
});

describe("claim", () => {
  const funded = async (amount = 10_000n) => {
    const channel = await net.newChannel();
    await net.send(
      net.relayer,
      net.call("deposit", await net.erc3009Deposit(channel.payer, channel.config, amount)),
    );
    return channel;
  };

  test("never above the signed cumulative amount", async () => {
    const { payer, config } = await funded();
    const claim = await net.voucherClaim(payer, config, 3_000n, 3_001n);
    assert.equal(
      await net.revertOf(net.devnet.accounts.payTo.address, "claim", [[claim]]),
      "ClaimAboveVoucher",
    );
  });

  test("never above the channel balance", async () => {
    const { payer, config } = await funded(10_000n);
    const claim = await net.voucherClaim(payer, config, 20_000n, 10_001n);
    assert.equal(
      await net.revertOf(net.devnet.accounts.payTo.address, "claim", [[claim]]),
      "ClaimAboveBalance",
    );
  });

  test("refuses a voucher not signed by the payer authorizer", async () => {
    const { config } = await funded();
    const claim = await net.voucherClaim(freshAccount(), config, 3_000n, 3_000n);
    assert.equal(
      await net.revertOf(net.devnet.accounts.payTo.address, "claim", [[claim]]),
      "InvalidVoucherSignature",
    );
  });

  test("claim is for the receiver or the receiver authorizer only", async () => {
    const { payer, config, channelId } = await funded();
    const claim = await net.voucherClaim(payer, config, 3_000n, 2_500n);
    assert.equal(await net.revertOf(freshAccount().address, "claim", [[claim]]), "NotReceiverOrAuthorizer");
    assert.equal(await net.revertOf(payer.address, "claim", [[claim]]), "NotReceiverOrAuthorizer");
    await net.send(net.devnet.accounts.payTo, net.call("claim", [[claim]]));
    assert.deepEqual(await net.channelOf(channelId), { balance: 10_000n, totalClaimed: 2_500n });
    const later = await net.voucherClaim(payer, config, 4_000n, 4_000n);
    await net.send(net.authorizer, net.call("claim", [[later]]));
    assert.deepEqual(await net.channelOf(channelId), { balance: 10_000n, totalClaimed: 4_000n });
  });

  test("claimWithSignature: anyone may relay the authorizer's ClaimBatch signature, nobody else's", async () => {
    const a = await funded();
    const b = await funded();
    const claims = [
      await net.voucherClaim(a.payer, a.config, 1_000n, 900n),
      await net.voucherClaim(b.payer, b.config, 2_000n, 2_000n),
    ];
    const stranger = freshAccount();
    await net.testClient.setBalance({ address: stranger.address, value: 10n ** 18n });
    const forged = await net.signClaimBatch(stranger, claims);
    assert.equal(
      await net.revertOf(stranger.address, "claimWithSignature", [claims, forged]),
      "InvalidAuthorizerSignature",
    );
    const signature = await net.signClaimBatch(net.authorizer, claims);
    // The signature covers the amounts: raising one row invalidates it.
    const raised = [claims[0], { ...claims[1], totalClaimed: 1_999n }] as typeof claims;
    assert.equal(
      await net.revertOf(stranger.address, "claimWithSignature", [raised, signature]),
      "InvalidAuthorizerSignature",
    );
    await net.send(stranger, net.call("claimWithSignature", [claims, signature]));
    assert.equal((await net.channelOf(a.channelId)).totalClaimed, 900n);
    assert.equal((await net.channelOf(b.channelId)).totalClaimed, 2_000n);
  });

  test("a row at or below the claimed total changes nothing and does not sink the batch", async () => {
    const { payer, config, channelId } = await funded();
    await net.send(
      net.devnet.accounts.payTo,
      net.call("claim", [[await net.voucherClaim(payer, config, 5_000n, 5_000n)]]),
    );
    const receiverBefore = await net.read<[bigint, bigint]>("receivers", [config.receiver, config.token]);
    const stale = await net.voucherClaim(payer, config, 3_000n, 3_000n);
    await net.send(net.devnet.accounts.payTo, net.call("claim", [[stale]]));
    assert.equal((await net.channelOf(channelId)).totalClaimed, 5_000n);
    assert.deepEqual(await net.read("receivers", [config.receiver, config.token]), receiverBefore);
  });
});

describe("settle", () => {
  test("moves the claimed total of many channels to the receiver in one transfer", async () => {
    const receiver = freshAccount();
    const channels = [];
    for (let i = 0; i < 3; i++) {
      const channel = await net.newChannel({ receiver: receiver.address });
      await net.send(
        net.relayer,
        net.call("deposit", await net.erc3009Deposit(channel.payer, channel.config, 10_000n)),
      );
      channels.push(channel);
    }
    const claims = await Promise.all(
      channels.map((c, i) =>
        net.voucherClaim(c.payer, c.config, 1_000n * BigInt(i + 1), 1_000n * BigInt(i + 1)),
      ),
    );
    await net.send(
      net.relayer,
      net.call("claimWithSignature", [claims, await net.signClaimBatch(net.authorizer, claims)]),
    );
    const token = net.devnet.contracts.usdc;
    const settled = await net.send(net.relayer, net.call("settle", [receiver.address, token]));
    assert.equal(await net.balanceOf(token, receiver.address), 6_000n);
    const transfers = settled.logs.filter((log) => log.address.toLowerCase() === token.toLowerCase());
    assert.equal(transfers.length, 1, "one token transfer");
    const [event] = parseEventLogs({ abi: net.abi, logs: settled.logs, eventName: "Settled" });
    assert.ok(event);
    assert.equal((event.args as unknown as { amount: bigint }).amount, 6_000n);
    assert.deepEqual(await net.read("receivers", [receiver.address, token]), [6_000n, 6_000n]);
    // Settling again moves nothing.
    const again = await net.send(net.relayer, net.call("settle", [receiver.address, token]));
    assert.equal(again.logs.length, 0);
    assert.equal(await net.balanceOf(token, receiver.address), 6_000n);
    // Channels keep their balance; the claimed part is no longer refundable.
    for (const [i, c] of channels.entries()) {
      assert.deepEqual(await net.channelOf(c.channelId as Hex), {
        balance: 10_000n,
        totalClaimed: 1_000n * BigInt(i + 1),
      });
    }
  });
});
