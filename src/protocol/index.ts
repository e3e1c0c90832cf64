export { type AuthorizationKey, authorizationKey } from "./authorizationKey.js";
export {
  type Base64JsonLimits,
  DEFAULT_BASE64_JSON_LIMITS,
  type DecodeBase64JsonReturnType,
  decodeBase64Json,
  encodeBase64Json,
} from "./base64Json.js";
export { hashUsageReceipt } from "./hashUsageReceipt.js";
export {
  EXPOSED_PAYMENT_HEADERS,
  type HeaderReader,
  LEGACY_PAYMENT_HEADER,
  LEGACY_PAYMENT_RESPONSE_HEADER,
  PAYMENT_HEADER_NAMES,
  PAYMENT_REQUIRED_HEADER,
  PAYMENT_RESPONSE_HEADER,
  PAYMENT_SIGNATURE_HEADER,
  readPaymentHeader,
} from "./headerNames.js";
export {
  type DecodePaymentRequiredHeaderReturnType,
  decodePaymentRequiredHeader,
  encodePaymentRequiredHeader,
} from "./paymentRequiredHeader.js";
export {
  type DecodePaymentResponseHeaderReturnType,
  decodePaymentResponseHeader,
  encodePaymentResponseHeader,
} from "./paymentResponseHeader.js";
export {
  paymentPayloadEnvelopeSchema,
  paymentRequiredSchema,
  paymentRequirementsSchema,
  resourceInfoSchema,
  settleResponseSchema,
  verifyResponseSchema,
} from "./paymentSchemas.js";
export {
  type DecodePaymentSignatureHeaderReturnType,
  decodePaymentSignatureHeader,
  encodePaymentSignatureHeader,
} from "./paymentSignatureHeader.js";
export {
  addressSchema,
  bytes32Schema,
  caip2NetworkSchema,
  evmNetworkSchema,
  hexBytesSchema,
  uint256StringSchema,
} from "./primitives.js";
export { isKnownReasonCode, ReasonCode } from "./reasonCodes.js";
export {
  formatReceiptEvent,
  type ParseReceiptEventReturnType,
  parseReceiptEvent,
  RECEIPT_FIELD,
  type ReceiptEventEnvelope,
  SSE_DONE_EVENT,
  type StreamReceipt,
  streamReceiptSchema,
} from "./receiptEvent.js";
export {
  type ExactEip3009Payload,
  type ExactPayload,
  type ExactPermit2Payload,
  exactEip3009PayloadSchema,
  exactPermit2PayloadSchema,
  isPermit2Payload,
  type UptoPermit2Payload,
  uptoPermit2PayloadSchema,
} from "./schemePayloads.js";
export {
  type CheckSignedReceiptsReturnType,
  checkSignedReceipts,
  type ReceiptCheckStatus,
  type ReceiptExpectations,
  type SignedReceipts,
  signedReceiptExtensions,
  signedReceiptsOf,
} from "./signedReceipts.js";
export type {
  DecodedPaymentPayload,
  EvmPaymentRequirements,
  ExactPaymentPayload,
  Network,
  PaymentPayload,
  PaymentRequired,
  PaymentRequirements,
  ResourceInfo,
  SettleResponse,
  UptoPaymentPayload,
  VerifyResponse,
} from "./types.js";
export {
  justifiedByUsageReceipt,
  NO_CHANNEL_ID,
  type RecoverUsageReceiptSignerReturnType,
  recoverUsageReceiptSigner,
  type SignedUsageReceipt,
  type SignHash,
  signedUsageReceiptSchema,
  signUsageReceipt,
  USAGE_RECEIPT_EXTENSION,
  USAGE_RECEIPT_TYPES,
  type UsageReceiptPayload,
  usageReceiptDomain,
  usageReceiptMessage,
  usageReceiptPayloadSchema,
} from "./usageReceipt.js";
