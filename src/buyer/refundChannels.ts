import { BATCH_SETTLEMENT_ADDRESS, toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { createPublicClient, createWalletClient, type Hex, http, type LocalAccount } from "viem";
import { batchSettlementAbi } from "../chain/index.js";
import { describeFetchFailure } from "./describeFetchFailure.js";
import { disputeClaimAboveCounted } from "./disputeClaimAboveCounted.js";
import { readChannelOnChain } from "./readChannelOnChain.js";
import type { BuyerChannel, SpendStore } from "./SpendStore.js";
import { spendChannelStorage } from "./spendChannelStorage.js";

/** What became of one channel's remainder. */
export type ChannelRefundOutcome = { channelId: string; url: string } & (
  | { kind: "refunded"; amountAtomic: bigint | undefined; transaction: string }
  | {
      kind: "withdrawal_started";
      amountAtomic: bigint;
      transaction: string;
      finalizableAt: Date;
      /** Why the payer started it: the seller did not answer, or answered a refund the chain does not show. */
      because: string;
    }
  | { kind: "withdrawal_pending"; amountAtomic: bigint; finalizableAt: Date }
  | { kind: "withdrawn"; amountAtomic: bigint; transaction: string }
  | { kind: "nothing_to_refund" }
  | { kind: "failed"; reason: string }
);

export type RefundChannelsParameters = {
  store: SpendStore;
  account: LocalAccount;
  /** The provider (URL origin) whose channels are refunded. */
  origin: string;
  /** The chain's RPC: reads the escrow, and sends the withdrawal when the seller does not answer. */
  rpcUrl?: string | undefined;
  /**
   * Where the seller takes refunds (Tollgate's gateway: `<gateway>/v1/channels/refund`); default
   * the paid URL each channel was opened on, as the official server takes them.
   */
  refundUrl?: string | undefined;
  fetch?: typeof fetch | undefined;
};

/**
 * Gets back what is left in the buyer's channels with one seller. For each channel: first the
 * official client's cooperative refund (the seller claims what it charged and returns the rest in
 * one transaction); when the seller does not answer, the payer's own exit — `initiateWithdraw`
 * for the unclaimed escrow (the seller may still claim its vouchers during the delay), and on a
 * later run, once the delay has passed, `finalizeWithdraw`. With an RPC, a seller's answer that it
 * refunded is held to the chain: a channel still holding money unclaimed after it gets the same exit.
 * A withdrawal costs the payer gas.
 */
export async function refundChannels({
  store,
  account,
  origin,
  rpcUrl,
  refundUrl,
  fetch: fetchImpl = globalThis.fetch,
}: RefundChannelsParameters): Promise<ChannelRefundOutcome[]> {
  const transport = rpcUrl ? http(rpcUrl, { timeout: 15_000, retryCount: 1 }) : undefined;
  const publicClient = transport ? createPublicClient({ transport }) : undefined;
  const signer = publicClient ? toClientEvmSigner(account, publicClient) : account;
  const storage = spendChannelStorage(async () => store);
  const outcomes: ChannelRefundOutcome[] = [];
  for (const channel of await store.channels({ origin, payer: account.address })) {
    const base = { channelId: channel.channelId, url: channel.url };
    const onChain = publicClient
      ? await readChannelOnChain(publicClient, channel.channelId, channel.withdrawDelay)
      : undefined;
    // A seller may claim on chain more than its receipts said, up to the latest voucher: counted and
    // disputed here, before the refund and after it (the seller claims as it refunds).
    const judgeClaims = (totalClaimedAtomic: bigint) =>
      disputeClaimAboveCounted(store, { channel, payer: account.address, totalClaimedAtomic });
    if (onChain) await judgeClaims(onChain.totalClaimedAtomic);
    if (onChain?.pendingWithdrawal) {
      const { amountAtomic, finalizableAt } = onChain.pendingWithdrawal;
      const chainNow = Number((await publicClient!.getBlock()).timestamp) * 1000;
      if (chainNow < finalizableAt.getTime() || !transport) {
        outcomes.push({ ...base, kind: "withdrawal_pending", amountAtomic, finalizableAt });
        continue;
      }
      const available = onChain.balanceAtomic - onChain.totalClaimedAtomic;
      let amount = available;
      if (amountAtomic < amount) amount = amountAtomic;
      outcomes.push({ ...base, ...(await finalizeWithdrawal(store, account, transport, channel, amount)) });
      continue;
    }
    const remaining = remainingAtomic(channel, onChain);
    if (remaining <= 0n) {
      outcomes.push({ ...base, kind: "nothing_to_refund" });
      continue;
    }
    const scheme = new BatchSettlementEvmScheme(signer, { storage, salt: channel.salt as Hex });
    try {
      const settled = await scheme.refund(refundUrl ?? channel.url, { fetch: fetchImpl });
      if (!settled.success) throw new Error(`Refund failed: ${settled.errorReason ?? "unknown reason"}`);
      const claimed = publicClient
        ? await readChannelOnChain(publicClient, channel.channelId, channel.withdrawDelay).catch(
            () => undefined,
          )
        : undefined;
      if (claimed) await judgeClaims(claimed.totalClaimedAtomic);
      const statedAtomic = /^[0-9]+$/.test(settled.amount ?? "")
        ? BigInt(settled.amount as string)
        : undefined;
      // The seller's answer is its word; the chain says whether the remainder left the escrow.
      const stillHeldAtomic = claimed ? claimed.balanceAtomic - claimed.totalClaimedAtomic : 0n;
      if (claimed && transport && stillHeldAtomic > 0n) {
        // The official client forgot the channel on the seller's answer: its record comes back as it was,
        // and the payer takes its own exit, as from a seller that does not answer.
        if (channel.context) await store.saveChannelContext(channel.channelId, channel.context);
        const because = `${origin} answered that it refunded${statedAtomic === undefined ? "" : ` ${statedAtomic}`} (transaction ${settled.transaction}), but the channel still holds ${stillHeldAtomic} unclaimed on chain`;
        outcomes.push({
          ...base,
          ...(await startWithdrawal(account, transport, channel, stillHeldAtomic, because)),
        });
        continue;
      }
      await keepRefundedChannel(store, channel, claimed);
      outcomes.push({
        ...base,
        kind: "refunded",
        amountAtomic: statedAtomic,
        transaction: settled.transaction,
      });
    } catch (error) {
      const reason = describeFetchFailure(error) ?? (error as Error).message;
      if (sellerAnswered(error) || !transport || !onChain) {
        outcomes.push({
          ...base,
          kind: "failed",
          reason: sellerAnswered(error)
            ? reason
            : `the seller did not answer: ${reason}; try again once it does, or give an RPC (tollgate refund --rpc URL) to start the on-chain withdrawal, whose gas the wallet pays`,
        });
        continue;
      }
      const available = onChain.balanceAtomic - onChain.totalClaimedAtomic;
      const because = `${origin} did not answer (${reason})`;
      outcomes.push({ ...base, ...(await startWithdrawal(account, transport, channel, available, because)) });
    }
  }
  return outcomes;
}

/**
 * The official client forgets a channel it had refunded whole, but the channel stays on chain
 * holding what the seller claimed, and its next voucher must build on that total. Without an RPC
 * to read it back, a forgotten channel would be paid into again on 0 and every voucher refused as
 * out of sync, so its record is kept: the refund voucher signed for the charged total, which the
 * seller claimed, and the rest left the escrow.
 */
async function keepRefundedChannel(
  store: SpendStore,
  channel: BuyerChannel,
  onChain: { balanceAtomic: bigint; totalClaimedAtomic: bigint } | undefined,
): Promise<void> {
  if ((await store.channelContext(channel.channelId)) !== undefined) return;
  const charged = channel.context?.chargedCumulativeAmount ?? "0";
  const claimed = onChain ? onChain.totalClaimedAtomic.toString() : charged;
  await store.saveChannelContext(channel.channelId, {
    chargedCumulativeAmount: claimed,
    balance: onChain ? onChain.balanceAtomic.toString() : charged,
    totalClaimed: claimed,
  });
}

/** What the buyer may still get back: the escrow less what is charged or already claimed. */
function remainingAtomic(
  channel: BuyerChannel,
  onChain: { balanceAtomic: bigint; totalClaimedAtomic: bigint } | undefined,
) {
  const charged = BigInt(channel.context?.chargedCumulativeAmount ?? "0");
  if (!onChain) return BigInt(channel.context?.balance ?? "0") - charged;
  const spent = charged > onChain.totalClaimedAtomic ? charged : onChain.totalClaimedAtomic;
  return onChain.balanceAtomic - spent;
}

/**
 * True when the seller answered the refund request with a refusal of its own (then a withdrawal
 * is not what the buyer asked for); false when it did not answer (unreachable, or no 402 probe).
 */
function sellerAnswered(error: unknown): boolean {
  const message = (error as Error).message ?? "";
  return message.startsWith("Refund failed:") && !/server returned 402 after/.test(message);
}

function channelConfigOf(channel: BuyerChannel) {
  const config = channel.config as Record<string, string | number>;
  return {
    payer: config.payer as Hex,
    payerAuthorizer: config.payerAuthorizer as Hex,
    receiver: config.receiver as Hex,
    receiverAuthorizer: config.receiverAuthorizer as Hex,
    token: config.token as Hex,
    withdrawDelay: Number(config.withdrawDelay),
    salt: config.salt as Hex,
  };
}

async function sendPayerCall(
  account: LocalAccount,
  transport: ReturnType<typeof http>,
  call:
    | { functionName: "initiateWithdraw"; args: readonly [ReturnType<typeof channelConfigOf>, bigint] }
    | { functionName: "finalizeWithdraw"; args: readonly [ReturnType<typeof channelConfigOf>] },
): Promise<string> {
  const wallet = createWalletClient({ account, transport });
  const publicClient = createPublicClient({ transport });
  const chainId = await publicClient.getChainId();
  const hash = await wallet.writeContract({
    address: BATCH_SETTLEMENT_ADDRESS,
    abi: batchSettlementAbi,
    chain: {
      id: chainId,
      name: `eip155:${chainId}`,
      nativeCurrency: { name: "native", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [] } },
    },
    ...call,
  } as Parameters<typeof wallet.writeContract>[0]);
  const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 100 });
  if (receipt.status !== "success") throw new Error(`${call.functionName} reverted (transaction ${hash})`);
  return hash;
}

async function startWithdrawal(
  account: LocalAccount,
  transport: ReturnType<typeof http>,
  channel: BuyerChannel,
  availableAtomic: bigint,
  /** Why the payer exits on its own: the seller did not answer, or its answer moved nothing. */
  because: string,
): Promise<
  | Omit<Extract<ChannelRefundOutcome, { kind: "withdrawal_started" }>, "channelId" | "url">
  | { kind: "failed"; reason: string }
> {
  try {
    const transaction = await sendPayerCall(account, transport, {
      functionName: "initiateWithdraw",
      args: [channelConfigOf(channel), availableAtomic],
    });
    return {
      kind: "withdrawal_started",
      amountAtomic: availableAtomic,
      transaction,
      finalizableAt: new Date(Date.now() + channel.withdrawDelay * 1000),
      because,
    };
  } catch (error) {
    return {
      kind: "failed",
      reason: `${because}, and starting the on-chain withdrawal failed: ${(error as Error).message.split("\n")[0]} (the wallet pays this transaction's gas)`,
    };
  }
}

async function finalizeWithdrawal(
  store: SpendStore,
  account: LocalAccount,
  transport: ReturnType<typeof http>,
  channel: BuyerChannel,
  availableAtomic: bigint,
): Promise<
  { kind: "withdrawn"; amountAtomic: bigint; transaction: string } | { kind: "failed"; reason: string }
> {
  try {
    const transaction = await sendPayerCall(account, transport, {
      functionName: "finalizeWithdraw",
      args: [channelConfigOf(channel)],
    });
    await store.deleteChannelContext(channel.channelId);
    return { kind: "withdrawn", amountAtomic: availableAtomic, transaction };
  } catch (error) {
    return { kind: "failed", reason: `finalizeWithdraw failed: ${(error as Error).message.split("\n")[0]}` };
  }
}
