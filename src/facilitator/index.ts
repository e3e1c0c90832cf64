export {
  BATCH_SETTLEMENT_SCHEME,
  type ChannelAction,
  type ChannelPayloadSummary,
  channelPayloadSummaryOf,
  isBatchSettlementPayment,
} from "./batchSettlementPayload.js";
export {
  type CreateFacilitatorParameters,
  createFacilitator,
  type ReleaseResponse,
  type TollgateFacilitator,
} from "./createFacilitator.js";
export { type CreateFacilitatorAppParameters, createFacilitatorApp } from "./createFacilitatorApp.js";
export {
  type CreateFacilitatorClientParameters,
  createFacilitatorClient,
  type FacilitatorClient,
  facilitatorRelaysApprovals,
} from "./createFacilitatorClient.js";
export { createFacilitatorMetrics } from "./createFacilitatorMetrics.js";
export type { FacilitatorEvent, FacilitatorEventListener } from "./FacilitatorEvent.js";
export {
  type FindSettlementOnChainParameters,
  findSettlementOnChain,
  isAuthorizationSpent,
  type SettlementEvidence,
} from "./findSettlementOnChain.js";
export { hasMatchingTransfer } from "./findTransfer.js";
export {
  type GasSponsoringExtensionKey,
  type GasSponsoringOptions,
  gasSponsoringExtensionKeys,
  type SponsoredApproval,
  sponsoredApprovalOf,
} from "./gasSponsoring.js";
export { type ServeFacilitatorParameters, serveFacilitator } from "./serveFacilitator.js";
export { type SettlementKey, settlementKeyOf, settlementKeyString } from "./settlementKey.js";
export {
  createMemorySettlementStore,
  type SettlementRecord,
  type SettlementStore,
} from "./settlementStore.js";
export { settlementStoreFromLog } from "./settlementStoreFromLog.js";
