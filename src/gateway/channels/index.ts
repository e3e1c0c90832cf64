export { bindLedgerToChain } from "./bindLedgerToChain.js";
export { correctiveOffers, DEFAULT_SCHEME_ORDER, orderOffers } from "./channelOffers.js";
export { ChannelReason } from "./channelReasons.js";
export {
  BATCH_SETTLEMENT,
  type ChannelAcceptance,
  type ChannelBilling,
  type ChannelReservation,
  channelStateExtra,
  createChannelBilling,
} from "./createChannelBilling.js";
export { CHANNEL_REFUND_PATH, createChannelRefund } from "./createChannelRefund.js";
export { type ChannelSettlement, createChannelSettlement } from "./createChannelSettlement.js";
export { type OnchainChannelState, readChannelState } from "./readChannelState.js";
export {
  type ChannelDifference,
  type ReconcileChannelsParameters,
  type ReconcileChannelsReturnType,
  reconcileChannels,
} from "./reconcileChannels.js";
export { refuseStrandedChannels } from "./refuseStrandedChannels.js";
export { type GatewayChannels, startChannels } from "./startChannels.js";
