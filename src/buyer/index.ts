export { type AuthorizationTerms, authorizationOf } from "./authorizationOf.js";
export {
  authorizePayment,
  type ConfirmPayment,
  type ConfirmPaymentRequest,
  type PaymentAttempt,
  type PaymentContext,
} from "./authorizePayment.js";
export type { BuyerEvent, BuyerEventListener, ReportedUsage } from "./BuyerEvent.js";
export { bookedChargeOf, statedChargeOf } from "./bookedChargeOf.js";
export { type CheckOfferParameters, checkOffer } from "./checkOffer.js";
export {
  type ChooseProviderParameters,
  type ChooseProviderReturnType,
  chooseProvider,
  type ProviderCandidate,
} from "./chooseProvider.js";
export {
  type CreatePayingFetchParameters,
  createPayingFetch,
  type PayingFetch,
} from "./createPayingFetch.js";
export {
  type BuyerPaymentOptions,
  type BuyerSigner,
  type CreatePaymentContextParameters,
  type CreatePaymentContextReturnType,
  createPaymentContext,
} from "./createPaymentContext.js";
export { type CreateSpendStoreParameters, createSpendStore, utcDay } from "./createSpendStore.js";
export { describeFetchFailure } from "./describeFetchFailure.js";
export { describeTransaction, formatReceiptLine } from "./formatReceiptLine.js";
export {
  type InferenceKind,
  type InferenceRequest,
  readInferenceRequest,
  routePathOf,
} from "./inferenceRequest.js";
export {
  type AuthorizationChecker,
  type AuthorizationOnChain,
  createAuthorizationChecker,
} from "./isAuthorizationUsed.js";
export { defaultDataDir, type OpenSpendStoreParameters, openSpendStore } from "./openSpendStore.js";
export { permit2AllowanceError } from "./permit2Approval.js";
export {
  type PickableProvider,
  type PickProviderParameters,
  type PickProviderReturnType,
  pickProvider,
} from "./pickProvider.js";
export { type PolicyRefusal, type PolicyRule, policyRefusedError } from "./policyRefusal.js";
export { apiBaseUrl, fetchProviderModels, type ProviderModel } from "./providerModels.js";
export {
  estimateRequest,
  justifiedChargeAtomic,
  type QuotedPrice,
  quotedPriceOf,
  type RequestEstimate,
} from "./quotedPrice.js";
export { type ChannelOnChain, readChannelOnChain } from "./readChannelOnChain.js";
export { createReceiptSignerBook, type ReceiptSignerBook } from "./receiptSigners.js";
export {
  type ChannelRefundOutcome,
  type RefundChannelsParameters,
  refundChannels,
} from "./refundChannels.js";
export {
  type ResolveLapsedReservationsParameters,
  resolveLapsedReservations,
  SELLER_REFUSED_NOTE,
  TOOL_REFUSED_NOTE,
} from "./resolveLapsedReservations.js";
export type {
  BuyerChannel,
  BuyerChannelInput,
  DaySpend,
  DisputeReason,
  ProviderDaySpend,
  ProviderLatency,
  RecordDisputeInput,
  ReservationStatus,
  ReserveSpendInput,
  ReserveSpendResult,
  SpendDispute,
  SpendReservation,
  SpendStore,
  StoredReceipts,
} from "./SpendStore.js";
export { type OfferChoice, selectOffer } from "./selectOffer.js";
export { type ReadReceipt, recordReceipt } from "./settlePaidResponse.js";
export { spendChannelStorage } from "./spendChannelStorage.js";
export {
  type ProviderPolicy,
  parseSpendingPolicy,
  parseSpendingPolicyYaml,
  providerOrigin,
  type SpendingPolicy,
  type SpendingPolicyInput,
  spendingPolicySchema,
} from "./spendingPolicy.js";
export { spendMigrations } from "./spendMigrations.js";
export { type BodyTapMode, tapResponseBody } from "./tapResponseBody.js";
export { type VerifyChargeParameters, type VerifyChargeReturnType, verifyCharge } from "./verifyCharge.js";
