import { type Address, erc20Abi, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createPayingFetch, type PayingFetch } from "../../src/buyer/index.js";
import { type ChannelDevnet, startChannelDevnet } from "../../src/devnet/batchSettlementTesting.js";
import { createFacilitator, type TollgateFacilitator } from "../../src/facilitator/index.js";
import { type OfficialChannelSellerParameters, startOfficialChannelSeller } from "./officialChannelSeller.js";

export type ChannelSeller = Awaited<ReturnType<typeof startOfficialChannelSeller>>;

/** A devnet with the in-process facilitator, and official channel sellers in front of paid routes. */
export async function startChannelHarness() {
  const net: ChannelDevnet = await startChannelDevnet();
  const facilitator: TollgateFacilitator = createFacilitator({
    rpcUrl: net.devnet.rpcUrl,
    privateKey: net.devnet.accounts.facilitator.privateKey,
    network: net.devnet.network,
    pollingIntervalMs: 20,
  });
  const sellers: ChannelSeller[] = [];
  const fetches: PayingFetch[] = [];
  const { devnet } = net;
  return {
    net,
    devnet,
    facilitator,
    /** A seller of 1,000-atomic maxima charging 100 prompt + 200 completion tokens at $0.50/$1.50 per 1M (350). */
    async seller(overrides: Partial<OfficialChannelSellerParameters> = {}) {
      const seller = await startOfficialChannelSeller({
        facilitator,
        network: devnet.network,
        asset: devnet.contracts.usdc,
        payTo: devnet.accounts.payTo.address,
        receiverAuthorizer: privateKeyToAccount(generatePrivateKey()),
        maxAtomic: 1000n,
        prices: { inputPerMTokAtomic: 500_000n, outputPerMTokAtomic: 1_500_000n, fixedFeeAtomic: 0n },
        usage: { promptTokens: 100, completionTokens: 200 },
        ...overrides,
      });
      sellers.push(seller);
      return seller;
    },
    payingFetch(options: Parameters<typeof createPayingFetch>[0]): PayingFetch {
      const payingFetch = createPayingFetch({ rpcUrl: devnet.rpcUrl, dataDir: "memory://", ...options });
      fetches.push(payingFetch);
      return payingFetch;
    },
    /** How many transactions the chain has mined (anvil mines one block per transaction). */
    async transactionCount(): Promise<bigint> {
      const block = await net.publicClient.getBlockNumber({ cacheTime: 0 });
      let count = 0n;
      for (let number = 0n; number <= block; number += 1n) {
        const { transactions } = await net.publicClient.getBlock({ blockNumber: number });
        count += BigInt(transactions.length);
      }
      return count;
    },
    nativeBalance: (address: Address) => net.publicClient.getBalance({ address }),
    permit2Allowance: (owner: Address) =>
      net.publicClient.readContract({
        address: devnet.contracts.usdc,
        abi: erc20Abi,
        functionName: "allowance",
        args: [owner, devnet.contracts.permit2],
      }),
    channelOf: (channelId: string) => net.channelOf(channelId as Hex),
    async close() {
      for (const payingFetch of fetches) await payingFetch.close();
      for (const seller of sellers) await seller.close();
      await devnet.stop();
    },
  };
}

export type ChannelHarness = Awaited<ReturnType<typeof startChannelHarness>>;

/** POSTs a small chat request through `payingFetch` and reads the JSON answer. */
export async function postChat(payingFetch: typeof fetch, sellerUrl: string) {
  const response = await payingFetch(`${sellerUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "official-model",
      messages: [{ role: "user", content: "tell me about toll roads ".repeat(40) }],
      max_tokens: 200,
    }),
  });
  const body = await response.text();
  return { status: response.status, body, headers: response.headers };
}
