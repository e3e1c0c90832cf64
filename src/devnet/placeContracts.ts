import {
  BATCH_SETTLEMENT_ADDRESS,
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  PERMIT2_ADDRESS,
  x402ExactPermit2ProxyAddress,
  x402UptoPermit2ProxyAddress,
} from "@x402/evm";
import {
  type Address,
  createTestClient,
  createWalletClient,
  encodeAbiParameters,
  type Hex,
  http,
  keccak256,
  maxUint256,
  publicActions,
  stringToHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { TollgateError } from "../errors/index.js";
import type { ContractArtifact, DevnetArtifacts } from "./artifacts.js";
import type { KeyedAccount } from "./devAccounts.js";

/** Multicall3's canonical address, used by viem and by @x402/evm's diagnostics. */
export const MULTICALL3_ADDRESS: Address = "0xcA11bde05977b3631167028862bE2a173976CA11";

/**
 * The x402 batch-settlement Permit2 deposit collector's canonical address (`@x402/evm` uses it
 * but does not export it from its root).
 */
export const PERMIT2_DEPOSIT_COLLECTOR_ADDRESS: Address = "0x4020425FAf3B746C082C2f942b4E5159887B0005";

/** Where each devnet contract lives. */
export type DevnetContracts = {
  usdc: Address;
  /** A 6-decimal test token without EIP-2612 (`PlainTestToken`). */
  plainToken: Address;
  permit2: Address;
  uptoProxy: Address;
  exactProxy: Address;
  multicall3: Address;
  /** x402 batch settlement (payment channels) and its deposit collectors. */
  batchSettlement: Address;
  erc3009DepositCollector: Address;
  permit2DepositCollector: Address;
};

export type PlaceContractsParameters = {
  rpcUrl: string;
  chainId: number;
  artifacts: DevnetArtifacts;
  deployer: KeyedAccount;
};

const EIP712_DOMAIN_TYPEHASH = keccak256(
  stringToHex("EIP712Domain(string name,uint256 chainId,address verifyingContract)"),
);

/** Permit2's EIP-712 domain separator at `address` (Permit2's domain has no version). */
export function permit2DomainSeparator(chainId: number, address: Address): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: "bytes32" }, { type: "bytes32" }, { type: "uint256" }, { type: "address" }],
      [EIP712_DOMAIN_TYPEHASH, keccak256(stringToHex("Permit2")), BigInt(chainId), address],
    ),
  );
}

/**
 * Places Permit2, the x402 upto and exact proxies, the x402 batch settlement contract with its
 * two deposit collectors and Multicall3 at their canonical addresses, and deploys the test USD coin.
 *
 * Permit2 keeps its domain separator in an immutable computed from the address it was
 * deployed at, so it is deployed normally first and its runtime code is then re-targeted:
 * the cached separator is replaced by the one for the canonical address before placing.
 */
export async function placeContracts({
  rpcUrl,
  chainId,
  artifacts,
  deployer,
}: PlaceContractsParameters): Promise<DevnetContracts> {
  const transport = http(rpcUrl);
  const test = createTestClient({ mode: "anvil", transport });
  const wallet = createWalletClient({ account: privateKeyToAccount(deployer.privateKey), transport }).extend(
    publicActions,
  );

  const deploy = async (artifact: ContractArtifact): Promise<Address> => {
    const hash = await wallet.deployContract({ abi: artifact.abi, bytecode: artifact.bytecode, chain: null });
    const receipt = await wallet.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    if (receipt.status !== "success" || !receipt.contractAddress) {
      throw new TollgateError({
        code: "TOLLGATE_DEVNET_FAILED",
        shortMessage: `deploying ${artifact.contractName} failed`,
        details: { hash },
      });
    }
    return receipt.contractAddress;
  };

  const placeImmutableFree = async (artifact: ContractArtifact, address: Address) => {
    if (Object.keys(artifact.immutableReferences).length > 0) {
      throw new TollgateError({
        code: "TOLLGATE_DEVNET_FAILED",
        shortMessage: `${artifact.contractName} has immutables and cannot be placed by code alone`,
      });
    }
    await test.setCode({ address, bytecode: artifact.deployedBytecode });
  };

  // One deployer key: deploy in sequence so the two transactions do not race for a nonce.
  const permit2Deployed = await deploy(artifacts.Permit2);
  const usdc = await deploy(artifacts.TestUSDC);
  const plainToken = await deploy(artifacts.PlainTestToken);
  const deployedCode = await wallet.getCode({ address: permit2Deployed });
  if (!deployedCode)
    throw new TollgateError({ code: "TOLLGATE_DEVNET_FAILED", shortMessage: "Permit2 has no code" });
  const fromSeparator = permit2DomainSeparator(chainId, permit2Deployed).slice(2);
  const toSeparator = permit2DomainSeparator(chainId, PERMIT2_ADDRESS).slice(2);
  if (!deployedCode.includes(fromSeparator)) {
    throw new TollgateError({
      code: "TOLLGATE_DEVNET_FAILED",
      shortMessage: "Permit2's cached domain separator was not found in its runtime code",
    });
  }
  await Promise.all([
    test.setCode({
      address: PERMIT2_ADDRESS,
      bytecode: deployedCode.replaceAll(fromSeparator, toSeparator) as Hex,
    }),
    placeImmutableFree(artifacts.X402UptoPermit2Proxy, x402UptoPermit2ProxyAddress),
    placeImmutableFree(artifacts.X402ExactPermit2Proxy, x402ExactPermit2ProxyAddress),
    placeImmutableFree(artifacts.Multicall3, MULTICALL3_ADDRESS),
    placeImmutableFree(artifacts.X402BatchSettlement, BATCH_SETTLEMENT_ADDRESS),
    placeImmutableFree(artifacts.ERC3009DepositCollector, ERC3009_DEPOSIT_COLLECTOR_ADDRESS),
    placeImmutableFree(artifacts.Permit2DepositCollector, PERMIT2_DEPOSIT_COLLECTOR_ADDRESS),
  ]);

  const separator = await wallet.readContract({
    address: PERMIT2_ADDRESS,
    abi: [
      {
        type: "function",
        name: "DOMAIN_SEPARATOR",
        inputs: [],
        outputs: [{ type: "bytes32" }],
        stateMutability: "view",
      },
    ],
    functionName: "DOMAIN_SEPARATOR",
  });
  if (separator !== `0x${toSeparator}`) {
    throw new TollgateError({
      code: "TOLLGATE_DEVNET_FAILED",
      shortMessage: "Permit2 at the canonical address reports the wrong domain separator",
      details: { separator, expected: `0x${toSeparator}` },
    });
  }
  return {
    usdc,
    plainToken,
    permit2: PERMIT2_ADDRESS,
    uptoProxy: x402UptoPermit2ProxyAddress,
    exactProxy: x402ExactPermit2ProxyAddress,
    multicall3: MULTICALL3_ADDRESS,
    batchSettlement: BATCH_SETTLEMENT_ADDRESS,
    erc3009DepositCollector: ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
    permit2DepositCollector: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS,
  };
}

/** Unlimited allowance for Permit2, as wallets grant it once per token. */
export const PERMIT2_APPROVAL = maxUint256;
