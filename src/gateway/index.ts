export type {
  AdmitPaymentReturnType,
  PaymentAdmissionRefusal,
  PaymentAdmissionRequest,
} from "./admitPayment.js";
export {
  type BillingEvent,
  type BillingEventListener,
  type BillingEventType,
  combineBillingListeners,
} from "./BillingEvent.js";
export { billHandlerFailure, billHandlerResponse } from "./billHandlerResponse.js";
export {
  BATCH_SETTLEMENT,
  CHANNEL_REFUND_PATH,
  type ChannelDifference,
  type GatewayChannels,
  type ReconcileChannelsReturnType,
  reconcileChannels,
} from "./channels/index.js";
export {
  type Billing,
  type BillingDecision,
  type BillingRequest,
  type CreateBillingParameters,
  createBilling,
  type PaymentRequiredWork,
  type SettlePaidWork,
} from "./createBilling.js";
export { type BillingSession, createBillingSession, type StreamEnding } from "./createBillingSession.js";
export { type CreateGatewayAppParameters, createGatewayApp } from "./createGatewayApp.js";
export {
  type CreatePaymentRecoveryParameters,
  createPaymentRecovery,
  type PaymentRecovery,
  type RecoveryReport,
} from "./createPaymentRecovery.js";
export {
  type CreateReceiptSignerParameters,
  createReceiptSigner,
  type ReceiptFacts,
  type ReceiptSigner,
} from "./createReceiptSigner.js";
export { createSseTap, type SseTap } from "./createSseTap.js";
export {
  type TollgateExpressContext,
  type TollgateExpressParameters,
  tollgateExpress,
} from "./expressBilling.js";
export type { FacilitatorLike } from "./facilitatorLike.js";
export {
  configProblems,
  type GatewayConfig,
  type GatewayConfigInput,
  gatewayConfigSchema,
  type ModelConfig,
  parseGatewayConfig,
} from "./gatewayConfig.js";
export { readGuardedText } from "./guardBackendBody.js";
export {
  routeKindOfPath,
  type TollgateContext,
  type TollgateHonoParameters,
  tollgateHono,
} from "./honoBilling.js";
export { modelUnitPrices } from "./modelUnitPrices.js";
export { type TollgateRouteHandler, type WithTollgateParameters, withTollgate } from "./nextBilling.js";
export {
  type CreateGatewayMetricsParameters,
  createGatewayMetrics,
  type GatewayMetrics,
} from "./operator/createGatewayMetrics.js";
export {
  type DashboardChannel,
  dashboardChannelsOf,
  type GatewayDashboard,
  type GatewayDashboardParameters,
  readGatewayDashboard,
} from "./operator/gatewayDashboard.js";
export { type MountOperatorRoutesParameters, mountOperatorRoutes } from "./operator/mountOperatorRoutes.js";
export {
  type BillingTerms,
  buildOffers,
  buildPaymentRequired,
  gasSponsoringExtensions,
  matchOffer,
  type OfferPricing,
} from "./paymentOffers.js";
export { proxyToBackend } from "./proxyToBackend.js";
export { quoteRequest, type RequestQuote, type RouteKind } from "./quoteRequest.js";
export {
  type ReconcileDifference,
  type ReconcileLedgerParameters,
  type ReconcileLedgerReturnType,
  reconcileLedger,
} from "./reconcileLedger.js";
export {
  DEFAULT_SETTLE_TIMEOUT_MS,
  SETTLEMENT_IN_PROGRESS,
  SETTLEMENT_PENDING,
  type SettleRecordedChargeParameters,
  settleRecordedCharge,
} from "./settleRecordedCharge.js";
export { type Gateway, type StartGatewayParameters, startGateway } from "./startGateway.js";
