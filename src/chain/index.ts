export { batchSettlementAbi } from "./batchSettlementAbi.js";
export { broadcastTransaction } from "./broadcastTransaction.js";
export {
  type CreateFacilitatorSignerParameters,
  createFacilitatorSigner,
  type TollgateFacilitatorSigner,
} from "./createFacilitatorSigner.js";
export { createNodeHttpFetch } from "./createNodeHttpFetch.js";
export { createNonceManager, type NonceManager } from "./createNonceManager.js";
export { eip2612NoncesAbi } from "./eip2612NoncesAbi.js";
export { inputSpendsNonce } from "./inputSpendsNonce.js";
export { isNonceSpent, type OnChainNonce } from "./isNonceSpent.js";
export {
  chainIdOf,
  DEVNET_CHAIN_ID,
  findNetworkPreset,
  type NetworkPreset,
  networkAliases,
  networkPresets,
} from "./networks.js";
export { permit2AndTokenErrorsAbi } from "./permit2Errors.js";
export { privateKeyAccount } from "./privateKeyAccount.js";
export {
  isTransportError,
  type RpcFailureScope,
  recordRpcTransportFailure,
  withRpcFailureScope,
} from "./rpcFailures.js";
