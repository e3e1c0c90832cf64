export { type CreateBuyerMcpServerParameters, createBuyerMcpServer } from "./createBuyerMcpServer.js";
export {
  type CreateDemoToolServerParameters,
  createDemoToolServer,
} from "./createDemoToolServer.js";
export {
  type CreateMcpHttpHandlerParameters,
  createMcpHttpHandler,
  type McpHttpHandler,
} from "./createMcpHttpHandler.js";
export {
  type CreateMcpToolPayerParameters,
  createMcpToolPayer,
  type McpToolPayer,
  type PaidToolCall,
  type PaidToolCallOptions,
} from "./createMcpToolPayer.js";
export {
  MCP_PAYMENT_META_KEY,
  MCP_PAYMENT_RESPONSE_META_KEY,
  paymentRequiredResult,
  type ReadPaymentMetaReturnType,
  readPaymentMeta,
  readPaymentRequiredResult,
  readPaymentResponseMeta,
} from "./mcpPaymentMeta.js";
export { type MountMcpEndpointParameters, mountMcpEndpoint } from "./mountMcpEndpoint.js";
export { type PaidInferenceToolParameters, paidInferenceTool } from "./paidInferenceTool.js";
export {
  type PaidToolParameters,
  type PaidToolWork,
  paidTool,
  type ToolExtra,
  type ToolPrice,
  toolError,
} from "./paidTool.js";
