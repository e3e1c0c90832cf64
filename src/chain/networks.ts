import type { Address } from "viem";

/** A chain Tollgate can bill on: its CAIP-2 id, chain id, and the USDC it settles in. */
export type NetworkPreset = {
  /** CAIP-2 network id, e.g. `eip155:137`. */
  network: `eip155:${number}`;
  chainId: number;
  name: string;
  /** USDC on that chain; undefined on the devnet, where Tollgate deploys its own. */
  usdc?: Address;
  /** EIP-712 domain of the USDC contract (name, version), needed by `exact` with EIP-3009. */
  usdcDomain: { name: string; version: string };
  /** A public RPC endpoint to start from; operators should bring their own. */
  defaultRpcUrl?: string;
  /** A public x402 v2 facilitator for this network, where one is known. */
  publicFacilitatorUrl?: string;
  testnet: boolean;
};

/** The devnet: anvil's default chain id. */
export const DEVNET_CHAIN_ID = 31337;

/** Network presets by CAIP-2 id; https://chainagnostic.org/CAIPs/caip-2 */
export const networkPresets: Record<string, NetworkPreset> = {
  "eip155:137": {
    network: "eip155:137",
    chainId: 137,
    name: "Polygon PoS",
    usdc: "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
    usdcDomain: { name: "USD Coin", version: "2" },
    defaultRpcUrl: "https://polygon-rpc.com",
    publicFacilitatorUrl: "https://x402.polygon.technology",
    testnet: false,
  },
  "eip155:80002": {
    network: "eip155:80002",
    chainId: 80002,
    name: "Polygon Amoy",
    usdc: "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582",
    usdcDomain: { name: "USDC", version: "2" },
    defaultRpcUrl: "https://rpc-amoy.polygon.technology",
    publicFacilitatorUrl: "https://x402-amoy.polygon.technology",
    testnet: true,
  },
  "eip155:8453": {
    network: "eip155:8453",
    chainId: 8453,
    name: "Base",
    usdc: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    usdcDomain: { name: "USD Coin", version: "2" },
    defaultRpcUrl: "https://mainnet.base.org",
    testnet: false,
  },
  "eip155:84532": {
    network: "eip155:84532",
    chainId: 84532,
    name: "Base Sepolia",
    usdc: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    usdcDomain: { name: "USDC", version: "2" },
    defaultRpcUrl: "https://sepolia.base.org",
    testnet: true,
  },
  "eip155:31337": {
    network: "eip155:31337",
    chainId: DEVNET_CHAIN_ID,
    name: "Tollgate devnet (anvil)",
    usdcDomain: { name: "USD Coin", version: "2" },
    defaultRpcUrl: "http://127.0.0.1:8545",
    testnet: true,
  },
};

/** Short aliases accepted wherever a network is named. */
export const networkAliases: Record<string, string> = {
  polygon: "eip155:137",
  "polygon-amoy": "eip155:80002",
  amoy: "eip155:80002",
  base: "eip155:8453",
  "base-sepolia": "eip155:84532",
  devnet: "eip155:31337",
  anvil: "eip155:31337",
};

/** The preset for a CAIP-2 id or alias, or undefined. */
export function findNetworkPreset(nameOrId: string): NetworkPreset | undefined {
  return networkPresets[networkAliases[nameOrId] ?? nameOrId];
}

/** The chain id inside a CAIP-2 `eip155:N` id. */
export function chainIdOf(network: string): number {
  const match = /^eip155:(\d{1,12})$/.exec(network);
  if (!match?.[1]) throw new Error(`not an eip155 CAIP-2 network id: ${network}`);
  return Number(match[1]);
}
