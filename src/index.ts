/** Tollgate's public library API: the gateway's billing, the facilitator, the ledger, the devnet. */
export {
  type BuyerEvent,
  type ChannelRefundOutcome,
  type CreatePayingFetchParameters,
  chooseProvider,
  createPayingFetch,
  openSpendStore,
  type PayingFetch,
  parseSpendingPolicy,
  parseSpendingPolicyYaml,
  type RefundChannelsParameters,
  refundChannels,
  type SpendingPolicy,
  verifyCharge,
} from "./buyer/index.js";
export { findNetworkPreset, type NetworkPreset, networkPresets } from "./chain/index.js";
export { type Devnet, startDevnet } from "./devnet/index.js";
export {
  isTollgateError,
  REQUEST_ID_HEADER,
  TollgateError,
  type TollgateErrorCode,
} from "./errors/index.js";
export {
  createFacilitator,
  createFacilitatorApp,
  createFacilitatorClient,
  createFacilitatorMetrics,
  type FacilitatorEvent,
  type ReleaseResponse,
  serveFacilitator,
  type TollgateFacilitator,
} from "./facilitator/index.js";
export {
  type Billing,
  type BillingEvent,
  type BillingEventListener,
  type BillingTerms,
  createBilling,
  createGatewayApp,
  createGatewayMetrics,
  type GatewayConfig,
  type ModelConfig,
  mountOperatorRoutes,
  parseGatewayConfig,
  proxyToBackend,
  startGateway,
  type TollgateContext,
  type TollgateExpressContext,
  type TollgateRouteHandler,
  tollgateExpress,
  tollgateHono,
  type WithTollgateParameters,
  withTollgate,
} from "./gateway/index.js";
export { type Ledger, openLedger, openPostgresLedger } from "./ledger/index.js";
export {
  createBuyerMcpServer,
  createDemoToolServer,
  createMcpHttpHandler,
  createMcpToolPayer,
  MCP_PAYMENT_META_KEY,
  MCP_PAYMENT_RESPONSE_META_KEY,
  type McpToolPayer,
  mountMcpEndpoint,
  type PaidToolParameters,
  paidInferenceTool,
  paidTool,
  readPaymentRequiredResult,
  readPaymentResponseMeta,
  type ToolPrice,
} from "./mcp/index.js";
export {
  costAtomic,
  countTextTokens,
  formatMoney,
  maxAtomicForRequest,
  parseMoney,
  promptTokenBound,
} from "./pricing/index.js";
export {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  decodePaymentSignatureHeader,
  parseReceiptEvent,
  type StreamReceipt,
} from "./protocol/index.js";
