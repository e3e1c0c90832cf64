import {
  type Address,
  createTestClient,
  createWalletClient,
  erc20Abi,
  type Hex,
  http,
  parseEther,
  publicActions,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import type { DevnetArtifacts } from "./artifacts.js";
import { compileContracts } from "./compileContracts.js";
import { devAccount, devAccountRoles, type KeyedAccount } from "./devAccounts.js";
import { launchAnvil } from "./launchAnvil.js";
import { type DevnetContracts, PERMIT2_APPROVAL, placeContracts } from "./placeContracts.js";

export type StartDevnetParameters = {
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** How many funded buyer accounts to prepare: 1 to `MAX_DEVNET_BUYERS` (default 3). */
  buyers?: number;
  /**
   * How many "fresh" buyers to prepare: test USDC only, no Permit2 approval and no native gas, as
   * a new agent wallet is (default 1; 0 to MAX_DEVNET_BUYERS).
   */
  freshBuyers?: number;
  /** Test USDC each buyer starts with, in atomic units (default 1,000 USDC). */
  buyerUsdcAtomic?: bigint;
  /** Precompiled artifacts; compiled (or read from the cache) when absent. */
  artifacts?: DevnetArtifacts;
  logger?: Logger;
};

/** A running devnet: a real anvil chain with the x402 contracts at their canonical addresses. */
export type Devnet = {
  rpcUrl: string;
  chainId: number;
  network: `eip155:${number}`;
  contracts: DevnetContracts;
  accounts: {
    deployer: KeyedAccount;
    facilitator: KeyedAccount;
    payTo: KeyedAccount;
    buyers: KeyedAccount[];
    /** Buyers with test USDC only: no Permit2 approval, zero native balance. */
    freshBuyers: KeyedAccount[];
  };
  /** Mints test USDC to `to` (atomic units). */
  mintUsdc(to: Address, amountAtomic: bigint): Promise<void>;
  /** A fresh account with test ETH, `usdcAtomic` test USDC and Permit2 approved. */
  createBuyer(usdcAtomic?: bigint): Promise<KeyedAccount>;
  /** A fresh account with `usdcAtomic` test USDC only: no Permit2 approval, zero native balance. */
  createFreshBuyer(usdcAtomic?: bigint): Promise<KeyedAccount>;
  /** A fresh account with `atomic` of the test token without EIP-2612 only: no approval, zero native balance. */
  createFreshPlainTokenBuyer(atomic?: bigint): Promise<KeyedAccount>;
  /** The balance of `owner` in the test token without EIP-2612. */
  plainTokenBalance(owner: Address): Promise<bigint>;
  /** The test USDC balance of `owner`. */
  usdcBalance(owner: Address): Promise<bigint>;
  /** Waits until transaction `hash` is mined; throws when it reverted. */
  waitMined(hash: Hex): Promise<void>;
  stop(): Promise<void>;
};

/**
 * The most buyer accounts `startDevnet` prepares. Each costs a key derivation and two
 * transactions at start-up (about 30 ms); for more, call `createBuyer`.
 */
export const MAX_DEVNET_BUYERS = 50;

/** ETH each buyer starts with: what anvil gives its own pre-funded accounts. */
const BUYER_ETH = parseEther("10000");

const mintAbi = [
  {
    type: "function",
    name: "mint",
    inputs: [
      { name: "to", type: "address" },
      { name: "amount", type: "uint256" },
    ],
    outputs: [],
    stateMutability: "nonpayable",
  },
] as const;

/**
 * Starts anvil on loopback, places Permit2, the x402 proxies and Multicall3 at their
 * canonical addresses, deploys the test USD coin and funds buyer accounts.
 *
 * @example
 * const devnet = await startDevnet();
 * // … pay on devnet.rpcUrl with devnet.accounts.buyers[0] …
 * await devnet.stop();
 */
export async function startDevnet({
  host = "127.0.0.1",
  port = 0,
  buyers: buyerCount = 3,
  freshBuyers: freshBuyerCount = 1,
  buyerUsdcAtomic = 1_000_000_000n,
  artifacts,
  logger = silentLogger,
}: StartDevnetParameters = {}): Promise<Devnet> {
  if (!Number.isSafeInteger(buyerCount) || buyerCount < 1 || buyerCount > MAX_DEVNET_BUYERS) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `buyers must be an integer from 1 to ${MAX_DEVNET_BUYERS}, not ${buyerCount}`,
      details: { field: "buyers" },
    });
  }
  if (!Number.isSafeInteger(freshBuyerCount) || freshBuyerCount < 0 || freshBuyerCount > MAX_DEVNET_BUYERS) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `freshBuyers must be an integer from 0 to ${MAX_DEVNET_BUYERS}, not ${freshBuyerCount}`,
      details: { field: "freshBuyers" },
    });
  }
  const [compiling, launching] = await Promise.allSettled([
    artifacts ?? compileContracts({ logger }),
    launchAnvil({ host, port, logger }),
  ]);
  // A failed compile must not leave the anvil that started beside it running.
  if (compiling.status === "rejected") {
    if (launching.status === "fulfilled") await launching.value.stop();
    throw compiling.reason;
  }
  if (launching.status === "rejected") throw launching.reason;
  const compiled = compiling.value;
  const anvil = launching.value;
  try {
    const chainId = 31337;
    const deployer = devAccount(devAccountRoles.deployer);
    const contracts = await placeContracts({ rpcUrl: anvil.rpcUrl, chainId, artifacts: compiled, deployer });
    const transport = http(anvil.rpcUrl);
    const test = createTestClient({ mode: "anvil", transport });
    const deployerWallet = createWalletClient({
      account: privateKeyToAccount(deployer.privateKey),
      transport,
    }).extend(publicActions);

    const mint = async (token: Address, to: Address, amountAtomic: bigint) => {
      const hash = await deployerWallet.writeContract({
        address: token,
        abi: mintAbi,
        functionName: "mint",
        args: [to, amountAtomic],
        chain: null,
      });
      await deployerWallet.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    };
    const mintUsdc = (to: Address, amountAtomic: bigint) => mint(contracts.usdc, to, amountAtomic);
    const approvePermit2 = async (owner: KeyedAccount) => {
      const wallet = createWalletClient({ account: privateKeyToAccount(owner.privateKey), transport }).extend(
        publicActions,
      );
      const hash = await wallet.writeContract({
        address: contracts.usdc,
        abi: erc20Abi,
        functionName: "approve",
        args: [contracts.permit2, PERMIT2_APPROVAL],
        chain: null,
      });
      await wallet.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    };
    const prepareBuyer = async (buyer: KeyedAccount, usdcAtomic: bigint) => {
      // anvil funds only the mnemonic's first 10 accounts: without this, buyer 8 on
      // (index 10) cannot pay the gas of its Permit2 approval.
      await test.setBalance({ address: buyer.address, value: BUYER_ETH });
      await mintUsdc(buyer.address, usdcAtomic);
      await approvePermit2(buyer);
    };

    const prepareFreshBuyer = async (buyer: KeyedAccount, usdcAtomic: bigint) => {
      await test.setBalance({ address: buyer.address, value: 0n });
      await mintUsdc(buyer.address, usdcAtomic);
    };

    const buyers = Array.from({ length: buyerCount }, (_, i) => devAccount(devAccountRoles.firstBuyer + i));
    for (const buyer of buyers) await prepareBuyer(buyer, buyerUsdcAtomic);
    const freshBuyers = Array.from({ length: freshBuyerCount }, (_, i) =>
      devAccount(devAccountRoles.firstFreshBuyer + i),
    );
    for (const buyer of freshBuyers) await prepareFreshBuyer(buyer, buyerUsdcAtomic);

    const devnet: Devnet = {
      rpcUrl: anvil.rpcUrl,
      chainId,
      network: `eip155:${chainId}`,
      contracts,
      accounts: {
        deployer,
        facilitator: devAccount(devAccountRoles.facilitator),
        payTo: devAccount(devAccountRoles.payTo),
        buyers,
        freshBuyers,
      },
      mintUsdc,
      async createBuyer(usdcAtomic = buyerUsdcAtomic) {
        const privateKey: Hex = generatePrivateKey();
        const buyer = { address: privateKeyToAccount(privateKey).address, privateKey };
        await prepareBuyer(buyer, usdcAtomic);
        return buyer;
      },
      async createFreshBuyer(usdcAtomic = buyerUsdcAtomic) {
        const privateKey: Hex = generatePrivateKey();
        const buyer = { address: privateKeyToAccount(privateKey).address, privateKey };
        await prepareFreshBuyer(buyer, usdcAtomic);
        return buyer;
      },
      async createFreshPlainTokenBuyer(atomic = buyerUsdcAtomic) {
        const privateKey: Hex = generatePrivateKey();
        const buyer = { address: privateKeyToAccount(privateKey).address, privateKey };
        await test.setBalance({ address: buyer.address, value: 0n });
        await mint(contracts.plainToken, buyer.address, atomic);
        return buyer;
      },
      plainTokenBalance: (owner) =>
        deployerWallet.readContract({
          address: contracts.plainToken,
          abi: erc20Abi,
          functionName: "balanceOf",
          args: [owner],
        }),
      usdcBalance: (owner) =>
        deployerWallet.readContract({
          address: contracts.usdc,
          abi: erc20Abi,
          functionName: "balanceOf",
          args: [owner],
        }),
      waitMined: async (hash) => {
        const receipt = await deployerWallet.waitForTransactionReceipt({ hash, pollingInterval: 20 });
        if (receipt.status !== "success") throw new Error(`transaction ${hash} reverted`);
      },
      stop: () => anvil.stop(),
    };
    logger.info({ rpcUrl: anvil.rpcUrl, contracts }, "devnet ready");
    return devnet;
  } catch (error) {
    await anvil.stop();
    throw error;
  }
}
