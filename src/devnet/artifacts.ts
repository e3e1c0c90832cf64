import type { Abi, Hex } from "viem";

/** Byte ranges of one immutable inside runtime code, as solc reports them. */
export type ImmutableReference = { start: number; length: number };

/** One compiled contract: what deployment or `anvil_setCode` placement needs. */
export type ContractArtifact = {
  contractName: string;
  abi: Abi;
  /** Creation code (constructor included). */
  bytecode: Hex;
  /** Runtime code as compiled; immutables are zero-filled at the ranges below. */
  deployedBytecode: Hex;
  /** AST id of each immutable → where it sits in `deployedBytecode`. */
  immutableReferences: Record<string, ImmutableReference[]>;
};

/** Every contract the devnet places or deploys. */
export type DevnetArtifacts = {
  Permit2: ContractArtifact;
  X402UptoPermit2Proxy: ContractArtifact;
  X402ExactPermit2Proxy: ContractArtifact;
  TestUSDC: ContractArtifact;
  /** A 6-decimal ERC-20 without EIP-2612, for `erc20ApprovalGasSponsoring`. */
  PlainTestToken: ContractArtifact;
  Multicall3: ContractArtifact;
  /** Test-only: an ERC-20 whose transferFrom tries to re-enter the upto proxy. */
  HostileToken: ContractArtifact;
  /** x402 batch settlement (payment channels) and its two deposit collectors. */
  X402BatchSettlement: ContractArtifact;
  ERC3009DepositCollector: ContractArtifact;
  Permit2DepositCollector: ContractArtifact;
  /** Test-only: an ERC-20 whose transfer and transferFrom try to re-enter the batch settlement. */
  HostileChannelToken: ContractArtifact;
};
