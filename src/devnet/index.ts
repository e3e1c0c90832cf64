export type { ContractArtifact, DevnetArtifacts } from "./artifacts.js";
export { compileContracts } from "./compileContracts.js";
export { DEV_MNEMONIC, devAccount, devAccountRoles, type KeyedAccount } from "./devAccounts.js";
export {
  anvilBinaryPath,
  type LaunchAnvilParameters,
  type LaunchAnvilReturnType,
  launchAnvil,
} from "./launchAnvil.js";
export {
  type DevnetContracts,
  MULTICALL3_ADDRESS,
  PERMIT2_DEPOSIT_COLLECTOR_ADDRESS,
  permit2DomainSeparator,
  placeContracts,
} from "./placeContracts.js";
export {
  type Devnet,
  MAX_DEVNET_BUYERS,
  type StartDevnetParameters,
  startDevnet,
} from "./startDevnet.js";
