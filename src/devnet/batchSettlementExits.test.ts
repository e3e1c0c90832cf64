// Payer exits (timed withdrawal, cooperative refund), a hostile token's re-entry, stranded funds
// and gas, on our x402 batch-settlement contract on a real anvil.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Address, decodeErrorResult, encodeFunctionData, erc20Abi, type Hex, maxUint256 } from "viem";
import { type ChannelConfig, type ChannelDevnet, startChannelDevnet } from "./batchSettlementTesting.js";

let net: ChannelDevnet;

before(async () => {
  net = await startChannelDevnet();
});

after(async () => {
  await net?.devnet.stop();
});

const funded = async (amount = 10_000n, overrides: Partial<ChannelConfig> = {}) => {
  const channel = await net.newChannel(overrides);
  await net.send(
    net.relayer,
    net.call("deposit", await net.erc3009Deposit(channel.payer, channel.config, amount)),
  );
  return channel;
};

const advance = async (seconds: number) => {
  await net.testClient.increaseTime({ seconds });
  await net.testClient.mine({ blocks: 1 });
};

/** Mines a block exactly `seconds` after the block `receipt` was mined in, whatever the wall clock did. */
const mineAfter = async (receipt: { blockNumber: bigint }, seconds: number) => {
  const { timestamp } = await net.publicClient.getBlock({ blockNumber: receipt.blockNumber });
  await net.testClient.setNextBlockTimestamp({ timestamp: timestamp + BigInt(seconds) });
  await net.testClient.mine({ blocks: 1 });
};

describe("timed withdrawal", () => {
  test("waits out the delay, lets the receiver claim meanwhile, and pays out only unclaimed escrow", async () => {
    const { payer, config, channelId } = await funded(10_000n);
    assert.equal(
      await net.revertOf(net.relayer.address, "initiateWithdraw", [config, 1n]),
      "NotPayerOrAuthorizer",
    );
    assert.equal(
      await net.revertOf(payer.address, "initiateWithdraw", [config, 10_001n]),
      "WithdrawAmountInvalid",
    );
    const initiated = await net.send(payer, net.call("initiateWithdraw", [config, 10_000n]));
    assert.equal(await net.revertOf(payer.address, "finalizeWithdraw", [config]), "WithdrawDelayNotElapsed");
    // During the delay the receiver claims 3,000 of the latest voucher.
    await net.send(
      net.devnet.accounts.payTo,
      net.call("claim", [[await net.voucherClaim(payer, config, 3_000n, 3_000n)]]),
    );
    await mineAfter(initiated, 899);
    assert.equal(await net.revertOf(payer.address, "finalizeWithdraw", [config]), "WithdrawDelayNotElapsed");
    await mineAfter(initiated, 900);
    const before = await net.devnet.usdcBalance(payer.address);
    await net.send(payer, net.call("finalizeWithdraw", [config]));
    assert.equal(await net.devnet.usdcBalance(payer.address), before + 7_000n);
    assert.deepEqual(await net.channelOf(channelId), { balance: 3_000n, totalClaimed: 3_000n });
    assert.deepEqual(await net.read("pendingWithdrawals", [channelId]), [0n, 0]);
    // The claimed 3,000 is still the receiver's to settle.
    await net.send(net.relayer, net.call("settle", [config.receiver, config.token]));
    assert.equal(await net.revertOf(payer.address, "finalizeWithdraw", [config]), "NoPendingWithdrawal");
  });
});

describe("cooperative refund", () => {
  test("refundWithSignature takes the current nonce once; the nonce advances even when nothing is left", async () => {
    const { payer, config, channelId } = await funded(10_000n);
    const signature = await net.signRefund(net.authorizer, channelId, 0n, 4_000n);
    assert.equal(
      await net.revertOf(net.relayer.address, "refundWithSignature", [config, 4_000n, 1n, signature]),
      "RefundNonceMismatch",
    );
    const wrongAmount = [config, 5_000n, 0n, signature];
    assert.equal(
      await net.revertOf(net.relayer.address, "refundWithSignature", wrongAmount),
      "InvalidAuthorizerSignature",
    );
    const before = await net.devnet.usdcBalance(payer.address);
    await net.send(payer, net.call("refundWithSignature", [config, 4_000n, 0n, signature]));
    assert.equal(await net.devnet.usdcBalance(payer.address), before + 4_000n);
    assert.equal(await net.read("refundNonce", [channelId]), 1n);
    assert.equal(
      await net.revertOf(payer.address, "refundWithSignature", [config, 4_000n, 0n, signature]),
      "RefundNonceMismatch",
    );
    // The receiver refunds the rest directly; a further refund moves nothing but advances the nonce.
    await net.send(net.devnet.accounts.payTo, net.call("refund", [config, 6_000n]));
    assert.deepEqual(await net.channelOf(channelId), { balance: 0n, totalClaimed: 0n });
    const empty = await net.send(net.devnet.accounts.payTo, net.call("refund", [config, 1n]));
    assert.equal(empty.logs.length, 0);
    assert.equal(await net.read("refundNonce", [channelId]), 3n);
    assert.equal(await net.revertOf(payer.address, "refund", [config, 1n]), "NotReceiverOrAuthorizer");
  });

  test("never refunds claimed funds, and shrinks or cancels a pending withdrawal", async () => {
    const { payer, config, channelId } = await funded(10_000n);
    await net.send(
      net.devnet.accounts.payTo,
      net.call("claim", [[await net.voucherClaim(payer, config, 2_000n, 2_000n)]]),
    );
    await net.send(payer, net.call("initiateWithdraw", [config, 8_000n]));
    await net.send(net.authorizer, net.call("refund", [config, 3_000n]));
    assert.equal((await net.read<[bigint, number]>("pendingWithdrawals", [channelId]))[0], 5_000n);
    await net.send(net.authorizer, net.call("refund", [config, 1_000_000n]));
    assert.deepEqual(await net.channelOf(channelId), { balance: 2_000n, totalClaimed: 2_000n });
    assert.deepEqual(await net.read("pendingWithdrawals", [channelId]), [0n, 0]);
  });
});

describe("hostile token", () => {
  test("re-entry from the token's transfer is refused by the guard and gains nothing", async () => {
    const deployer = net.devnet.accounts.deployer;
    const hash = await net.wallet(deployer).deployContract({
      abi: net.artifacts.HostileChannelToken.abi,
      bytecode: net.artifacts.HostileChannelToken.bytecode,
    });
    const token = (await net.publicClient.waitForTransactionReceipt({ hash })).contractAddress as Address;
    const hostile = { address: token, abi: net.artifacts.HostileChannelToken.abi };
    const { payer, config, channelId } = await net.newChannel({ token });
    await net.send(deployer, { ...hostile, functionName: "mint", args: [payer.address, 10_000n] });
    await net.send(payer, {
      address: token,
      abi: erc20Abi,
      functionName: "approve",
      args: [net.devnet.contracts.permit2, maxUint256],
    });
    // Armed during the deposit's pull: a second settle/withdraw/refund path must not run inside it.
    const refundCall = encodeFunctionData({ abi: net.abi, functionName: "refund", args: [config, 1n] });
    await net.send(deployer, { ...hostile, functionName: "arm", args: [net.settlement, refundCall] });
    await net.send(net.relayer, net.call("deposit", await net.permit2Deposit(payer, config, 10_000n)));
    const reason = async () =>
      decodeErrorResult({
        abi: net.abi,
        data: (await net.publicClient.readContract({ ...hostile, functionName: "reentryResult" })) as Hex,
      }).errorName;
    assert.equal(await net.publicClient.readContract({ ...hostile, functionName: "reentryAttempted" }), true);
    assert.equal(await reason(), "ReentrancyGuardReentrantCall");
    // Armed during settle's transfer: settling twice must pay once.
    await net.send(
      net.devnet.accounts.payTo,
      net.call("claim", [[await net.voucherClaim(payer, config, 4_000n, 4_000n)]]),
    );
    const settleCall = encodeFunctionData({
      abi: net.abi,
      functionName: "settle",
      args: [config.receiver, token],
    });
    await net.send(deployer, { ...hostile, functionName: "arm", args: [net.settlement, settleCall] });
    await net.send(net.relayer, net.call("settle", [config.receiver, token]));
    assert.equal(await reason(), "ReentrancyGuardReentrantCall");
    assert.equal(await net.balanceOf(token, config.receiver), 4_000n);
    assert.deepEqual(await net.channelOf(channelId), { balance: 10_000n, totalClaimed: 4_000n });
    assert.equal(await net.balanceOf(token, net.settlement), 6_000n);
  });
});

describe("funds and gas", () => {
  test("no funds stranded: after claims, settle, refunds and withdrawals the contract holds exactly what it owes", async () => {
    const token = net.devnet.contracts.usdc;
    const start = await net.balanceOf(token, net.settlement);
    const payTo = net.devnet.accounts.payTo.address;
    // Earlier tests in this file left claimed-but-unsettled funds for payTo: they are owed too.
    const [claimed0, settled0] = await net.read<[bigint, bigint]>("receivers", [payTo, token]);
    const a = await funded(5_000n);
    const b = await funded(7_000n);
    const claims = [
      await net.voucherClaim(a.payer, a.config, 1_500n, 1_500n),
      await net.voucherClaim(b.payer, b.config, 2_500n, 2_000n),
    ];
    await net.send(
      net.relayer,
      net.call("claimWithSignature", [claims, await net.signClaimBatch(net.authorizer, claims)]),
    );
    await net.send(net.devnet.accounts.payTo, net.call("refund", [a.config, 99_999n]));
    await net.send(b.payer, net.call("initiateWithdraw", [b.config, 5_000n]));
    await advance(900);
    await net.send(b.payer, net.call("finalizeWithdraw", [b.config]));
    // Owed: unclaimed escrow (none left) plus claimed-but-unsettled (3,500), until settle.
    assert.equal((await net.balanceOf(token, net.settlement)) - start, 3_500n);
    await net.send(net.relayer, net.call("settle", [payTo, token]));
    assert.equal(await net.balanceOf(token, net.settlement), start - (claimed0 - settled0));
    const [claimed, settled] = await net.read<[bigint, bigint]>("receivers", [payTo, token]);
    assert.equal(claimed, settled);
    assert.deepEqual(await net.channelOf(a.channelId), { balance: 1_500n, totalClaimed: 1_500n });
    assert.deepEqual(await net.channelOf(b.channelId), { balance: 2_000n, totalClaimed: 2_000n });
  });

  test("gas: deposit, claim of 1 / 10 / 100 channels, settle, refund", async (t) => {
    const receiver = net.devnet.accounts.deployer.address;
    const gasOf = (r: { gasUsed: bigint }) => r.gasUsed.toString();
    const channels: Awaited<ReturnType<ChannelDevnet["newChannel"]>>[] = [];
    const deposits: bigint[] = [];
    for (let i = 0; i < 111; i++) {
      const channel = await net.newChannel({ receiver, usdcAtomic: 100_000n });
      const method = i === 0 ? net.permit2Deposit : net.erc3009Deposit;
      const receipt = await net.send(
        net.relayer,
        net.call("deposit", await method(channel.payer, channel.config, 50_000n)),
      );
      deposits.push(receipt.gasUsed);
      channels.push(channel);
    }
    t.diagnostic(`deposit (new channel): Permit2 ${deposits[0]} gas, ERC-3009 ${deposits[1]} gas`);
    const claimGas = async (group: typeof channels) => {
      const claims = await Promise.all(group.map((c) => net.voucherClaim(c.payer, c.config, 1_000n, 1_000n)));
      const signature = await net.signClaimBatch(net.authorizer, claims);
      return net.send(net.relayer, net.call("claimWithSignature", [claims, signature]));
    };
    const one = await claimGas(channels.slice(0, 1));
    const ten = await claimGas(channels.slice(1, 11));
    const hundred = await claimGas(channels.slice(11, 111));
    t.diagnostic(
      `claimWithSignature: 1 channel ${gasOf(one)}, 10 channels ${gasOf(ten)}, 100 channels ${gasOf(hundred)} gas`,
    );
    const settled = await net.send(net.relayer, net.call("settle", [receiver, net.devnet.contracts.usdc]));
    t.diagnostic(`settle (111 claims, one transfer): ${gasOf(settled)} gas`);
    assert.equal(await net.balanceOf(net.devnet.contracts.usdc, receiver), 111_000n);
    const first = channels[0];
    assert.ok(first);
    const signature = await net.signRefund(net.authorizer, first.channelId, 0n, 10_000n);
    const refunded = await net.send(
      net.relayer,
      net.call("refundWithSignature", [first.config, 10_000n, 0n, signature]),
    );
    t.diagnostic(`refundWithSignature: ${gasOf(refunded)} gas`);
    assert.ok(hundred.gasUsed < 100n * one.gasUsed, "a batch shares the fixed cost");
  });
});
