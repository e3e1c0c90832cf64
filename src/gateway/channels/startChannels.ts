import type { Hex, PublicClient } from "viem";
import { privateKeyAccount } from "../../chain/index.js";
import type { Logger } from "../../errors/index.js";
import type { ChannelLedger, PayerQuotas, PaymentLedger } from "../../ledger/index.js";
import { formatMoney } from "../../pricing/index.js";
import type { BillingEvent } from "../BillingEvent.js";
import type { FacilitatorLike } from "../facilitatorLike.js";
import type { GatewayConfig } from "../gatewayConfig.js";
import type { BillingTerms } from "../paymentOffers.js";
import { bindLedgerToChain } from "./bindLedgerToChain.js";
import { type ChannelBilling, createChannelBilling } from "./createChannelBilling.js";
import { createChannelRefund } from "./createChannelRefund.js";
import { type ChannelSettlement, createChannelSettlement } from "./createChannelSettlement.js";
import { refuseStrandedChannels } from "./refuseStrandedChannels.js";

/** A gateway's payment channels: acceptance of vouchers, cooperative refunds, and the claim/settle loop. */
export type GatewayChannels = {
  billing: ChannelBilling;
  refund: ReturnType<typeof createChannelRefund>;
  settlement: ChannelSettlement;
};

export type StartChannelsParameters = {
  config: NonNullable<GatewayConfig["channels"]>;
  terms: BillingTerms;
  channels: ChannelLedger;
  payments: PaymentLedger;
  /** Where each payer's small deposits and refunds are counted against their daily limits. */
  quotas: PayerQuotas;
  facilitator: FacilitatorLike;
  chain: PublicClient;
  /** The receiver-authorizer key (the config's, else the in-process facilitator's). */
  receiverAuthorizerKey: Hex;
  logger: Logger;
  /** Told of deposits, claims, settles and refunds (`channel_deposit`, `channel_claim`, `channel_settle`, `channel_refund`). */
  emit?: (event: BillingEvent) => void;
};

/**
 * Binds the ledger's channels to the chain (see `bindLedgerToChain`), builds the channel pieces from the
 * config, and starts the claim and settle intervals.
 */
export async function startChannels({
  config,
  terms,
  channels,
  payments,
  quotas,
  facilitator,
  chain,
  receiverAuthorizerKey,
  logger,
  emit,
}: StartChannelsParameters): Promise<GatewayChannels> {
  await bindLedgerToChain({ channels, chain, network: terms.network, logger });
  const receiverAuthorizer = privateKeyAccount(receiverAuthorizerKey);
  const elsewhere = await refuseStrandedChannels({
    channels,
    network: terms.network,
    receiver: terms.payTo,
    token: terms.asset,
    claims: {
      receiverAuthorizer: receiverAuthorizer.address,
      claimIntervalSeconds: config.claimIntervalSeconds,
    },
  });
  for (const held of elsewhere)
    logger.warn(
      { network: held.network, channels: held.channels, owedAtomic: held.owedAtomic.toString() },
      `the ledger holds ${formatMoney(held.owedAtomic)} on ${held.channels} payment channel(s) of ${held.network} not yet claimed or settled; this gateway bills ${terms.network} and leaves them alone: unless a gateway on ${held.network} runs on this ledger, start one there until they are claimed and settled (tollgate channels), or their payers can withdraw the charges`,
    );
  const billing = createChannelBilling({
    terms,
    channels,
    facilitator,
    chain,
    receiverAuthorizer,
    withdrawDelaySeconds: config.withdrawDelaySeconds,
    minDepositAtomic: config.minDeposit,
    smallDepositsPerPayerPerDay: config.smallDepositsPerPayerPerDay,
    quotas,
    payerOwes: (payer) => payments.hasOpenDebt(terms.network, payer),
    logger,
    emit,
  });
  const refund = createChannelRefund({
    billing,
    channels,
    facilitator,
    chain,
    receiverAuthorizer,
    refundsPerPayerPerDay: config.refundsPerPayerPerDay,
    quotas,
    logger,
    emit,
  });
  const settlement = createChannelSettlement({
    channels,
    payments,
    facilitator,
    chain,
    settlement: billing.settlementAddress,
    network: terms.network,
    chainId: billing.chainId,
    receiver: terms.payTo,
    token: terms.asset,
    receiverAuthorizer,
    claimIntervalMs: config.claimIntervalSeconds * 1000,
    settleIntervalMs: config.settleIntervalSeconds * 1000,
    minClaimAtomic: config.minClaimAtomic,
    withdrawDelaySeconds: config.withdrawDelaySeconds,
    refundIdleMs: config.refundIdleSeconds === undefined ? undefined : config.refundIdleSeconds * 1000,
    logger,
    emit,
  });
  settlement.start();
  logger.info(
    { receiverAuthorizer: receiverAuthorizer.address, withdrawDelaySeconds: config.withdrawDelaySeconds },
    "payment channels (batch-settlement) offered",
  );
  return { billing, refund, settlement };
}
