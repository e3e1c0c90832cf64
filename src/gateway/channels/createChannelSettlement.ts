import { randomBytes } from "node:crypto";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { type Address, type Hex, type LocalAccount, type PublicClient, parseEventLogs } from "viem";
import { batchSettlementAbi } from "../../chain/index.js";
import type { Logger } from "../../errors/index.js";
import type { ChannelLedger, ChannelRecord, PaymentLedger } from "../../ledger/index.js";
import type { BillingEvent } from "../BillingEvent.js";
import type { FacilitatorLike } from "../facilitatorLike.js";
import { type ChannelClaim, signClaimBatch, signRefund } from "./channelAuthorizer.js";
import { ChannelReason } from "./channelReasons.js";
import { BATCH_SETTLEMENT } from "./createChannelBilling.js";
import { readChannelState } from "./readChannelState.js";

/** How long an idle refund holds its channel without renewal; renewed while it waits for the chain. */
const IDLE_REFUND_LEASE_MS = 120_000;

export type CreateChannelSettlementParameters = {
  channels: ChannelLedger;
  /** The payment rows: a reservation whose request's row is final (e.g. failed after a crash) is freed. */
  payments?: PaymentLedger | undefined;
  facilitator: FacilitatorLike;
  chain: PublicClient;
  settlement: Address;
  network: `eip155:${number}`;
  chainId: number;
  receiver: Address;
  token: Address;
  receiverAuthorizer: LocalAccount;
  claimIntervalMs: number;
  settleIntervalMs: number;
  /** A channel is claimed once this much is charged and not claimed yet. */
  minClaimAtomic: bigint;
  /** The channels' withdraw delay (s): an idle channel is claimed well before a withdrawal could end. */
  withdrawDelaySeconds: number;
  /** Cooperatively refund channels idle this long (ms); undefined: never on its own. */
  refundIdleMs?: number | undefined;
  /** Vouchers per claim transaction; default 100. */
  maxClaimsPerBatch?: number;
  logger: Logger;
  /** Told of every claim and settle, one event per channel. */
  emit?: (event: BillingEvent) => void;
};

export type ChannelClaimResult = { channels: number; claimedAtomic: bigint; transaction: string };

/**
 * Claims the latest vouchers of many channels in one transaction and sweeps claimed funds to
 * payTo, on intervals: a channel is claimed once `minClaimAtomic` is owed, when its payer starts a
 * withdrawal, or when it idles for a third of the withdraw delay; `stop({ flush: true })` claims
 * and settles everything outstanding.
 */
export function createChannelSettlement(parameters: CreateChannelSettlementParameters) {
  const { channels, facilitator, chain, settlement, network, chainId, receiver, token, logger } = parameters;
  const maxClaimsPerBatch = parameters.maxClaimsPerBatch ?? 100;
  const timers: ReturnType<typeof setInterval>[] = [];
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;

  const requirements: PaymentRequirements = {
    scheme: BATCH_SETTLEMENT,
    network,
    asset: token,
    amount: "0",
    payTo: receiver,
    maxTimeoutSeconds: 0,
    extra: {},
  };
  const envelope = (payload: Record<string, unknown>): PaymentPayload => ({
    x402Version: 2,
    accepted: requirements,
    payload,
  });
  const ours = (channel: ChannelRecord) =>
    channel.network === network &&
    channel.receiver.toLowerCase() === receiver.toLowerCase() &&
    channel.token.toLowerCase() === token.toLowerCase();
  // A claim is signed by the channel's receiver-authorizer: one naming another key (another replica's)
  // is that key's to claim; settling is the receiver's, whoever claimed.
  const claimable = (channel: ChannelRecord) =>
    ours(channel) &&
    channel.config.receiverAuthorizer.toLowerCase() === parameters.receiverAuthorizer.address.toLowerCase();
  const claimEntry = (channel: ChannelRecord): ChannelClaim => ({
    voucher: { channel: channel.config, maxClaimableAmount: channel.signedMaxAtomic.toString() },
    signature: channel.signature,
    totalClaimed: channel.chargedAtomic.toString(),
  });

  /** Whether a channel's unclaimed charges are due now. */
  async function isDue(channel: ChannelRecord, force: boolean, now: number): Promise<boolean> {
    if (force || channel.withdrawRequestedAt > 0) return true;
    if (channel.chargedAtomic - channel.totalClaimedAtomic >= parameters.minClaimAtomic) return true;
    if (now - channel.lastRequestAt >= (parameters.withdrawDelaySeconds * 1000) / 3) return true;
    // A payer may start a withdrawal at any time: look, so the claim lands before its delay ends.
    const onchain = await readChannelState(chain, settlement, channel.channelId).catch(() => undefined);
    if (onchain === undefined || onchain.withdrawRequestedAt === 0) return false;
    // From now on the channel takes no new voucher.
    await channels.update(channel.channelId, (current) =>
      current
        ? { next: { ...current, withdrawRequestedAt: onchain.withdrawRequestedAt }, result: undefined }
        : { result: undefined },
    );
    return true;
  }

  /**
   * A channel short of its charges, read on chain again: the channel as booked once its payer deposited
   * since (paying what it owes, so its next claim takes it), or undefined while nothing came in.
   */
  async function depositedSince(channel: ChannelRecord): Promise<ChannelRecord | undefined> {
    const onchain = await readChannelState(chain, settlement, channel.channelId).catch((error: unknown) => {
      logger.warn({ channelId: channel.channelId, error: String(error) }, "channel state read failed");
      return undefined;
    });
    if (!onchain || onchain.balanceAtomic <= channel.balanceAtomic) return undefined;
    logger.info(
      { channelId: channel.channelId, balanceAtomic: onchain.balanceAtomic.toString() },
      "a deposit into a channel short of its charges: its charges are claimed again",
    );
    return channels.update(channel.channelId, (current) => {
      if (!current) return { result: undefined };
      const next = {
        ...current,
        balanceAtomic: onchain.balanceAtomic,
        totalClaimedAtomic: onchain.totalClaimedAtomic,
        withdrawRequestedAt: onchain.withdrawRequestedAt,
        refundNonce: onchain.refundNonce,
        onchainSyncedAt: Date.now(),
      };
      return { next, result: next };
    });
  }

  /** Frees reservations whose request ended without its charge (the gateway serving it died). */
  async function releaseAbandoned(list: readonly ChannelRecord[]): Promise<void> {
    if (!parameters.payments) return;
    for (const channel of list) {
      const pending = channel.pending;
      if (!pending || !/^[0-9a-f]{32}$/.test(pending.id)) continue;
      const row = await parameters.payments.findByKey({
        network: channel.network,
        payer: channel.payer,
        nonce: BigInt(`0x${pending.id}`).toString(),
      });
      if (row?.status !== "failed") continue;
      await channels.update(channel.channelId, (current) =>
        current?.pending?.id === pending.id
          ? { next: { ...current, pending: undefined }, result: undefined }
          : { result: undefined },
      );
      logger.info({ channelId: channel.channelId, paymentId: row.id }, "abandoned channel reservation freed");
    }
  }

  /** Claims every due channel's charges; one transaction per `maxClaimsPerBatch` channels. */
  async function claim({ force = false } = {}): Promise<ChannelClaimResult[]> {
    const now = Date.now();
    const due: ChannelRecord[] = [];
    const list = await channels.list();
    await releaseAbandoned(list.filter(claimable)).catch((error: unknown) =>
      logger.warn({ error: String(error) }, "freeing abandoned channel reservations failed"),
    );
    for (const listed of list) {
      if (!claimable(listed) || listed.chargedAtomic <= listed.totalClaimedAtomic) continue;
      // A shortfall found earlier: the escrow holds nothing more until the payer deposits again, which
      // is looked for on chain once a round.
      const channel =
        listed.totalClaimedAtomic >= listed.balanceAtomic ? await depositedSince(listed) : listed;
      if (channel && (await isDue(channel, force, now))) due.push(channel);
    }
    const results: ChannelClaimResult[] = [];
    const unclaimed: Hex[] = [];
    for (let start = 0; start < due.length; start += maxClaimsPerBatch)
      await claimBatch(due.slice(start, start + maxClaimsPerBatch), results, unclaimed);
    // The others are claimed and booked; these are tried again next time.
    if (unclaimed.length > 0)
      throw new Error(`${unclaimed.length} channel(s) could not be claimed: ${unclaimed.join(", ")}`);
    return results;
  }

  /**
   * Claims a batch in one transaction. A batch the contract refuses is claimed again in halves, so
   * one channel that cannot be claimed (its payer withdrew while the gateway was away) never holds
   * up the others; that channel alone is claimed up to what its escrow still holds.
   */
  async function claimBatch(
    batch: readonly ChannelRecord[],
    results: ChannelClaimResult[],
    unclaimed: Hex[],
  ): Promise<void> {
    const claims = batch.map(claimEntry);
    const settled = await submitClaims(claims);
    if (settled.success) {
      await recordClaimed(batch, settled.transaction, results);
      return;
    }
    logger.warn(
      { channels: batch.length, reason: settled.errorReason, message: settled.errorMessage },
      "channel claim failed",
    );
    if (batch.length > 1) {
      const half = Math.ceil(batch.length / 2);
      await claimBatch(batch.slice(0, half), results, unclaimed);
      await claimBatch(batch.slice(half), results, unclaimed);
      return;
    }
    const [channel] = batch as [ChannelRecord];
    const failedAlone = (reason: string | undefined, message: string | undefined) => {
      unclaimed.push(channel.channelId);
      logger.error(
        { channelId: channel.channelId, reason, message },
        "channel claim failed alone; it is tried again next time",
      );
    };
    let onchain: Awaited<ReturnType<typeof readChannelState>>;
    try {
      onchain = await readChannelState(chain, settlement, channel.channelId);
    } catch (error) {
      failedAlone("chain_unavailable", String(error));
      return;
    }
    if (onchain.totalClaimedAtomic >= channel.chargedAtomic) {
      // The chain holds it claimed as far as it was charged (a claim of it landed and its booking was
      // lost): a facilitator refuses a claim that would move nothing, so it is booked, with nothing sent.
      // Counted as the landed claim it books (whose transaction was not seen), once: a replica that
      // booked it first counted it.
      await bookClaimed(channel, "");
      logger.warn(
        {
          channelId: channel.channelId,
          chargedAtomic: channel.chargedAtomic.toString(),
          claimedOnChainAtomic: onchain.totalClaimedAtomic.toString(),
        },
        "channel already claimed on chain as far as it was charged: booked claimed, nothing sent",
      );
      await reportClaimedAbove(channel, onchain.totalClaimedAtomic);
      return;
    }
    if (onchain.balanceAtomic >= channel.chargedAtomic) {
      failedAlone(settled.errorReason, settled.errorMessage);
      return;
    }
    // The escrow holds less than was charged: its payer withdrew before the charges were claimed.
    await channels.update(channel.channelId, (current) =>
      current
        ? {
            next: {
              ...current,
              balanceAtomic: onchain.balanceAtomic,
              totalClaimedAtomic: onchain.totalClaimedAtomic,
            },
            result: undefined,
          }
        : { result: undefined },
    );
    logger.error(
      {
        channelId: channel.channelId,
        chargedAtomic: channel.chargedAtomic.toString(),
        escrowAtomic: onchain.balanceAtomic.toString(),
        shortfallAtomic: (channel.chargedAtomic - onchain.balanceAtomic).toString(),
      },
      "channel's escrow holds less than its charges (its payer withdrew before they were claimed): claiming what it holds",
    );
    if (onchain.balanceAtomic <= onchain.totalClaimedAtomic) return;
    const capped = {
      ...channel,
      chargedAtomic: onchain.balanceAtomic,
      totalClaimedAtomic: onchain.totalClaimedAtomic,
    };
    const retried = await submitClaims([claimEntry(capped)]);
    if (!retried.success) {
      failedAlone(retried.errorReason, retried.errorMessage);
      return;
    }
    await recordClaimed([capped], retried.transaction, results);
  }

  async function submitClaims(claims: ChannelClaim[]) {
    const claimAuthorizerSignature = await signClaimBatch(
      parameters.receiverAuthorizer,
      claims,
      network,
      chainId,
    );
    return facilitator.settle(envelope({ type: "claim", claims, claimAuthorizerSignature }), requirements);
  }

  /**
   * The channels of a batch its claim left as they were (no `Claimed` event) and that are not claimed
   * on chain to this ledger's charges: the claim did not take them (a facilitator's word the chain
   * does not bear out), so they are not booked and are tried again. A channel left as it was but
   * claimed on chain to its charges or beyond was claimed already: by this gateway before a crash (as
   * far as it charged), or, beyond what the ledger now holds, by a claimer with vouchers this ledger
   * never saw — another gateway with its own ledger, or this gateway before its ledger was replaced.
   * The vouchers taken here on the lower base are not paid: told loudly, as an error. Undefined when
   * the transaction's events cannot be read (the facilitator's word is taken).
   */
  async function notClaimedBy(batch: readonly ChannelRecord[], transaction: string) {
    let claimed: Set<string>;
    try {
      const receipt = await chain.waitForTransactionReceipt({ hash: transaction as Hex, timeout: 30_000 });
      claimed = new Set(
        parseEventLogs({ abi: batchSettlementAbi, eventName: "Claimed", logs: receipt.logs })
          .filter((log) => log.address.toLowerCase() === settlement.toLowerCase())
          .map((log) => log.args.channelId.toLowerCase()),
      );
    } catch (error) {
      logger.warn({ tx: transaction, error: String(error) }, "channel claim: its events could not be read");
      return undefined;
    }
    const missed = new Set<string>();
    for (const channel of batch) {
      if (claimed.has(channel.channelId.toLowerCase())) continue;
      const onchain = await readChannelState(chain, settlement, channel.channelId);
      if (onchain.totalClaimedAtomic < channel.chargedAtomic) {
        missed.add(channel.channelId.toLowerCase());
        logger.warn(
          {
            channelId: channel.channelId,
            tx: transaction,
            chargedAtomic: channel.chargedAtomic.toString(),
            claimedOnChainAtomic: onchain.totalClaimedAtomic.toString(),
          },
          "a claim said to have landed left this channel below its charges on chain; it is not booked claimed and is claimed again next round",
        );
        continue;
      }
      await reportClaimedAbove(channel, onchain.totalClaimedAtomic);
    }
    return missed;
  }

  /**
   * Tells loudly, as an error, of a channel claimed on chain above this ledger's charges: by vouchers
   * this ledger never saw, whose requests served here on the lower base are not paid.
   */
  async function reportClaimedAbove(channel: ChannelRecord, claimedOnChainAtomic: bigint): Promise<void> {
    // A sibling replica on this ledger may have charged and claimed more since the batch was read.
    const now = await channels.get(channel.channelId);
    const chargedAtomic = now?.chargedAtomic ?? channel.chargedAtomic;
    if (claimedOnChainAtomic <= chargedAtomic) return;
    logger.error(
      {
        channelId: channel.channelId,
        chargedAtomic: chargedAtomic.toString(),
        claimedOnChainAtomic: claimedOnChainAtomic.toString(),
      },
      "channel was claimed on chain above this ledger's charges by vouchers this ledger never saw: another gateway bills this channel with another ledger (or this ledger was replaced), and the requests served here on the lower base are not paid; run every gateway of this payTo on one ledger (PostgreSQL)",
    );
  }

  /**
   * Books a channel claimed on chain as far as it was charged, and counts what it booked (`channel_claim`):
   * counted once it is booked, and as far as it was, so a booking that throws leaves the claim to the next
   * round, which books it from the chain and counts it then.
   */
  async function bookClaimed(channel: ChannelRecord, transaction: string): Promise<void> {
    const bookedAtomic = await channels.update(channel.channelId, (current) =>
      current && current.totalClaimedAtomic < channel.chargedAtomic
        ? {
            next: { ...current, totalClaimedAtomic: channel.chargedAtomic },
            result: channel.chargedAtomic - current.totalClaimedAtomic,
          }
        : { result: 0n },
    );
    if (bookedAtomic > 0n)
      parameters.emit?.({
        type: "channel_claim",
        at: Date.now(),
        network,
        channelId: channel.channelId,
        amountAtomic: bookedAtomic,
        transaction,
      });
  }

  /** Books a landed claim: each channel's claimed total, its event, and the batch's result. */
  async function recordClaimed(
    all: readonly ChannelRecord[],
    transaction: string,
    results: ChannelClaimResult[],
  ): Promise<void> {
    const missed = await notClaimedBy(all, transaction);
    const batch = missed ? all.filter((channel) => !missed.has(channel.channelId.toLowerCase())) : all;
    let claimedAtomic = 0n;
    for (const channel of batch) {
      claimedAtomic += channel.chargedAtomic - channel.totalClaimedAtomic;
      await bookClaimed(channel, transaction);
    }
    logger.info(
      { channels: batch.length, claimedAtomic: claimedAtomic.toString(), tx: transaction },
      "channels claimed",
    );
    results.push({ channels: batch.length, claimedAtomic, transaction });
  }

  /**
   * Whether the chain holds nothing claimed and unsettled for payTo, and every channel the ledger has
   * as claimed and unsettled is claimed on chain as far: then another transaction settled them.
   */
  async function sweptAlready(owed: readonly ChannelRecord[]): Promise<boolean> {
    const [claimedAtomic, settledAtomic] = await chain.readContract({
      address: settlement,
      abi: batchSettlementAbi,
      functionName: "receivers",
      args: [receiver, token],
    });
    if (claimedAtomic !== settledAtomic) return false;
    for (const channel of owed) {
      const onchain = await readChannelState(chain, settlement, channel.channelId);
      if (onchain.totalClaimedAtomic < channel.totalClaimedAtomic) return false;
    }
    return true;
  }

  /**
   * The channels booked claimed whose claims the chain still holds. A claim whose block was reorganised
   * away after its receipt was seen is not on chain: booked settled, the sweep would count money that
   * never came, and its payer could withdraw what it was charged. Its booked claim goes back to the
   * chain's, so the next claim round claims it again; told loudly, as an error.
   */
  async function claimsTheChainHolds(booked: readonly ChannelRecord[]): Promise<ChannelRecord[]> {
    const held: ChannelRecord[] = [];
    for (const channel of booked) {
      const onchain = await readChannelState(chain, settlement, channel.channelId);
      if (onchain.totalClaimedAtomic >= channel.totalClaimedAtomic) {
        held.push(channel);
        continue;
      }
      await channels.update(channel.channelId, (current) =>
        current && current.totalClaimedAtomic > onchain.totalClaimedAtomic
          ? { next: { ...current, totalClaimedAtomic: onchain.totalClaimedAtomic }, result: undefined }
          : { result: undefined },
      );
      logger.error(
        {
          channelId: channel.channelId,
          claimedAtomic: channel.totalClaimedAtomic.toString(),
          claimedOnChainAtomic: onchain.totalClaimedAtomic.toString(),
        },
        "a claim booked as landed is not on chain (its block was reorganised away): it is not settled, and is claimed again next round",
      );
    }
    return held;
  }

  /**
   * With nothing owed in the ledger, claims the chain holds unsettled for payTo: a sweep booked as landed
   * whose block was reorganised away (or another gateway's claims). They are swept again; the ledger
   * already counts them, so nothing more is booked.
   */
  async function resweep(): Promise<{ transaction: string; settledAtomic: bigint } | undefined> {
    const [claimedAtomic, settledAtomic] = await chain.readContract({
      address: settlement,
      abi: batchSettlementAbi,
      functionName: "receivers",
      args: [receiver, token],
    });
    if (claimedAtomic <= settledAtomic) return undefined;
    const settled = await facilitator.settle(envelope({ type: "settle", receiver, token }), requirements);
    if (!settled.success) {
      logger.warn(
        { reason: settled.errorReason },
        "channel settle of claims the ledger has as settled failed",
      );
      throw new Error(
        `channel settle failed: ${settled.errorReason ?? "unknown"} ${settled.errorMessage ?? ""}`,
      );
    }
    logger.error(
      { unsettledAtomic: (claimedAtomic - settledAtomic).toString(), tx: settled.transaction },
      "claims the ledger has as settled to payTo were not (a sweep reorganised away, or claims of another ledger): swept again",
    );
    return { transaction: settled.transaction, settledAtomic: 0n };
  }

  /** Moves every claimed, unsettled amount to payTo in one transfer. */
  async function settle(): Promise<{ transaction: string; settledAtomic: bigint } | undefined> {
    const booked = (await channels.list()).filter((c) => ours(c) && c.totalClaimedAtomic > c.settledAtomic);
    const owed = await claimsTheChainHolds(booked);
    if (owed.length === 0) return resweep();
    const settled = await facilitator.settle(envelope({ type: "settle", receiver, token }), requirements);
    if (
      !settled.success &&
      settled.errorReason === ChannelReason.nothingToSettle &&
      (await sweptAlready(owed))
    ) {
      // Anyone may call the contract's settle: another transaction (a replica's, a shutdown's whose
      // answer was lost, a stranger's) already moved every claimed amount to payTo.
      logger.warn(
        { channels: owed.length },
        "channel claims were already settled to payTo by another transaction; booked as settled",
      );
    } else if (!settled.success) {
      logger.warn({ reason: settled.errorReason }, "channel settle failed");
      throw new Error(
        `channel settle failed: ${settled.errorReason ?? "unknown"} ${settled.errorMessage ?? ""}`,
      );
    }
    await channels.markSettled(
      owed.map((c) => ({ channelId: c.channelId, settledAtomic: c.totalClaimedAtomic })),
    );
    const settledAtomic = owed.reduce((sum, c) => sum + c.totalClaimedAtomic - c.settledAtomic, 0n);
    for (const channel of owed)
      parameters.emit?.({
        type: "channel_settle",
        at: Date.now(),
        network,
        channelId: channel.channelId,
        amountAtomic: channel.totalClaimedAtomic - channel.settledAtomic,
        transaction: settled.transaction,
      });
    logger.info(
      { settledAtomic: settledAtomic.toString(), tx: settled.transaction },
      "channels settled to payTo",
    );
    return { transaction: settled.transaction, settledAtomic };
  }

  /** The receipt of a sent transaction, however long it takes to be mined. */
  async function receiptOf(hash: Hex) {
    for (;;) {
      try {
        return await chain.waitForTransactionReceipt({ hash, timeout: 60_000 });
      } catch (error) {
        logger.warn({ tx: hash, error: String(error) }, "channel refund: still waiting for its transaction");
      }
    }
  }

  /** Cooperatively refunds each channel's unspent balance (claiming what it owes in the same call). */
  async function refundIdle(idleMs: number): Promise<{ channelId: Hex; transaction: string }[]> {
    const now = Date.now();
    const results: { channelId: Hex; transaction: string }[] = [];
    for (const listed of await channels.list()) {
      if (!claimable(listed) || now - listed.lastRequestAt < idleMs) continue;
      if (listed.pending && listed.pending.expiresAt > now) continue;
      // The channel is reserved while it is refunded, as a request would reserve it: a voucher served
      // on the balance being refunded could never be claimed.
      const pendingId = `refund-idle-${randomBytes(8).toString("hex")}`;
      // A channel the ledger cannot take now is passed over; the others are refunded all the same.
      const channel = await channels
        .update<ChannelRecord | undefined>(listed.channelId, (current) => {
          const at = Date.now();
          if (!current || at - current.lastRequestAt < idleMs) return { result: undefined };
          if (current.pending && current.pending.expiresAt > at) return { result: undefined };
          const next = {
            ...current,
            pending: {
              id: pendingId,
              maxAtomic: current.chargedAtomic,
              expiresAt: at + IDLE_REFUND_LEASE_MS,
            },
          };
          return { next, result: next };
        })
        .catch((error: unknown) => {
          logger.warn(
            { channelId: listed.channelId, error: String(error) },
            "channel refund: the channel could not be reserved; passed over this time",
          );
          return undefined;
        });
      if (!channel) continue;
      const held = (current: ChannelRecord | undefined): current is ChannelRecord =>
        current?.pending?.id === pendingId;
      const renew = setInterval(() => {
        channels
          .update(channel.channelId, (current) =>
            held(current) && current.pending
              ? {
                  next: {
                    ...current,
                    pending: { ...current.pending, expiresAt: Date.now() + IDLE_REFUND_LEASE_MS },
                  },
                  result: undefined,
                }
              : { result: undefined },
          )
          .catch(() => undefined);
      }, IDLE_REFUND_LEASE_MS / 4);
      renew.unref();
      try {
        const onchain = await readChannelState(chain, settlement, channel.channelId);
        const remainder = onchain.balanceAtomic - channel.chargedAtomic;
        if (remainder <= 0n) continue;
        const claims = channel.chargedAtomic > onchain.totalClaimedAtomic ? [claimEntry(channel)] : [];
        const payload = {
          type: "refund",
          channelConfig: channel.config,
          voucher: {
            channelId: channel.channelId,
            maxClaimableAmount: channel.signedMaxAtomic.toString(),
            signature: channel.signature,
          },
          amount: remainder.toString(),
          refundNonce: onchain.refundNonce.toString(),
          claims,
          refundAuthorizerSignature: await signRefund(
            parameters.receiverAuthorizer,
            channel.channelId,
            onchain.refundNonce,
            remainder,
            chainId,
          ),
          ...(claims.length > 0
            ? {
                claimAuthorizerSignature: await signClaimBatch(
                  parameters.receiverAuthorizer,
                  claims,
                  network,
                  chainId,
                ),
              }
            : {}),
        };
        const settled = await facilitator.settle(envelope(payload), requirements);
        // Sent but not yet mined (the facilitator stopped waiting): the refund may still land, so the
        // channel stays reserved until the chain has decided.
        const landed =
          settled.success ||
          (settled.transaction !== "" && (await receiptOf(settled.transaction as Hex)).status === "success");
        if (!landed) {
          logger.warn(
            { channelId: channel.channelId, reason: settled.errorReason },
            "idle channel refund failed",
          );
          continue;
        }
        const after = await readChannelState(chain, settlement, channel.channelId);
        await channels.update(channel.channelId, (current) =>
          current
            ? {
                next: {
                  ...current,
                  balanceAtomic: after.balanceAtomic,
                  totalClaimedAtomic: after.totalClaimedAtomic,
                  refundNonce: after.refundNonce,
                  withdrawRequestedAt: after.withdrawRequestedAt,
                  refundedAtomic: current.refundedAtomic + remainder,
                  onchainSyncedAt: Date.now(),
                },
                result: undefined,
              }
            : { result: undefined },
        );
        logger.info(
          { channelId: channel.channelId, refundedAtomic: remainder.toString() },
          "idle channel refunded",
        );
        const told = {
          at: Date.now(),
          network,
          channelId: channel.channelId,
          transaction: settled.transaction,
        };
        if (claims.length > 0)
          parameters.emit?.({
            ...told,
            type: "channel_claim",
            amountAtomic: channel.chargedAtomic - onchain.totalClaimedAtomic,
          });
        parameters.emit?.({ ...told, type: "channel_refund", amountAtomic: remainder });
        results.push({ channelId: channel.channelId, transaction: settled.transaction });
      } finally {
        clearInterval(renew);
        await channels
          .update(channel.channelId, (current) =>
            held(current)
              ? { next: { ...current, pending: undefined }, result: undefined }
              : { result: undefined },
          )
          .catch(() => undefined);
      }
    }
    return results;
  }

  // Replicas on one database take turns at claims and settles: two claim rounds at once would both send
  // the same claims (the second a transaction that claims nothing, its gas paid for nothing, its amounts
  // counted twice). An idle refund takes no turn: it holds its channel's reservation instead, and waits
  // for its transaction however long that takes, which must not hold up every replica's claims.
  const roundName = `${network}:${receiver.toLowerCase()}:${token.toLowerCase()}`;
  const inTurn =
    <T>(job: () => Promise<T>) =>
    () =>
      channels.exclusively(roundName, job);

  /**
   * Runs one job after the previous one, so claims, settles and refunds never overlap in this process;
   * claims and settles (`turn`) not with another replica's on the same ledger either.
   */
  const enqueue = <T>(job: () => Promise<T>, { turn = true } = {}): Promise<T> => {
    const run = turn ? inTurn(job) : job;
    const next = running.then(run, run);
    running = next.catch(() => undefined);
    return next;
  };
  const every = (ms: number, job: () => Promise<unknown>, what: string, turn = true) => {
    const timer = setInterval(() => {
      if (stopped) return;
      enqueue(job, { turn }).catch((error: unknown) =>
        logger.warn({ error: String(error) }, `channel ${what} failed`),
      );
    }, ms);
    timer.unref();
    timers.push(timer);
  };

  return {
    claim: (options?: { force?: boolean }) => enqueue(() => claim(options)),
    settle: () => enqueue(settle),
    refundIdle: (idleMs: number) => enqueue(() => refundIdle(idleMs), { turn: false }),
    start() {
      every(parameters.claimIntervalMs, () => claim(), "claim");
      every(parameters.settleIntervalMs, settle, "settle");
      const idleMs = parameters.refundIdleMs;
      if (idleMs !== undefined) every(Math.min(idleMs, 60_000), () => refundIdle(idleMs), "refund", false);
    },
    /** Stops the intervals; with `flush`, claims and settles everything outstanding first (bounded by `timeoutMs`). */
    async stop({ flush = false, timeoutMs = 30_000 }: { flush?: boolean; timeoutMs?: number } = {}) {
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      if (!flush) return running;
      const startedAt = Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const work = enqueue(async () => {
        // What was claimed is settled even when some channels could not be claimed.
        const claims = await claim({ force: true }).catch((error: unknown) => error as Error);
        const settled = await settle();
        if (claims instanceof Error) throw claims;
        return { claims, settled };
      });
      try {
        const outcome = await Promise.race([
          work,
          new Promise<"timeout">((resolve) => {
            timer = setTimeout(() => resolve("timeout"), timeoutMs);
          }),
        ]);
        if (outcome === "timeout")
          logger.warn(
            { timeoutMs },
            "channel claims at shutdown did not finish in time; they resume at the next start",
          );
        else
          logger.info(
            {
              claims: outcome.claims.length,
              claimedAtomic: outcome.claims.reduce((sum, c) => sum + c.claimedAtomic, 0n).toString(),
              settledAtomic: (outcome.settled?.settledAtomic ?? 0n).toString(),
              durationMs: Date.now() - startedAt,
            },
            "channels claimed and settled at shutdown",
          );
      } catch (error) {
        logger.warn(
          { error: String(error) },
          "channel claims at shutdown failed; they resume at the next start",
        );
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

export type ChannelSettlement = ReturnType<typeof createChannelSettlement>;
