import type { PublicClient } from "viem";
import { chainIdOf, DEVNET_CHAIN_ID } from "../../chain/index.js";
import { type Logger, TollgateError } from "../../errors/index.js";
import type { ChannelLedger } from "../../ledger/index.js";

export type BindLedgerToChainParameters = {
  channels: ChannelLedger;
  chain: PublicClient;
  /** CAIP-2 network the gateway bills on. */
  network: `eip155:${number}`;
  logger: Logger;
};

/**
 * Makes sure the ledger's channels were recorded on the chain the gateway talks to, before any voucher is
 * checked or claimed: a channel's charged total is only true on its own chain, and its vouchers must never be
 * claimed on another. A chain is told apart by its block 0. On the devnet's chain id a new block 0 means a
 * devnet started afresh: the old chain's channels are set aside (kept, and logged). On any other network
 * block 0 never changes, so another one means the rpcUrl serves some other chain, and the gateway refuses
 * to start rather than put aside channels whose vouchers are still owed.
 */
export async function bindLedgerToChain({
  channels,
  chain,
  network,
  logger,
}: BindLedgerToChainParameters): Promise<void> {
  let genesis: { hash: `0x${string}` | null; timestamp: bigint };
  try {
    genesis = await chain.getBlock({ blockNumber: 0n });
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_CHAIN_UNAVAILABLE",
      shortMessage:
        "payment channels: the rpcUrl did not answer with the chain's block 0, which tells which chain the ledger's channels belong to; check rpcUrl and start again",
      cause,
    });
  }
  if (!genesis.hash)
    throw new TollgateError({
      code: "TOLLGATE_CHAIN_UNAVAILABLE",
      shortMessage: "payment channels: the rpcUrl answered block 0 without its hash",
    });
  const result = await channels.bindChain(
    { network, genesisHash: genesis.hash, genesisAt: new Date(Number(genesis.timestamp) * 1000) },
    { allowChange: chainIdOf(network) === DEVNET_CHAIN_ID },
  );
  if (result.kind === "refused")
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `config key rpcUrl: it serves a chain whose block 0 is ${genesis.hash}, but this ledger's ${network} channels were recorded on the chain whose block 0 is ${result.previousGenesisHash}; point rpcUrl at ${network}`,
      details: { network, genesisHash: genesis.hash, ledgerGenesisHash: result.previousGenesisHash },
    });
  if (result.kind === "same") return;
  if (result.setAside.length > 0)
    logger.warn(
      {
        network,
        genesisHash: genesis.hash,
        previousGenesisHash: result.previousGenesisHash,
        channels: result.setAside.map((channel) => ({
          channelId: channel.channelId,
          chargedAtomic: channel.chargedAtomic.toString(),
          totalClaimedAtomic: channel.totalClaimedAtomic.toString(),
        })),
      },
      `payment channels: ${result.setAside.length} channel(s) of an earlier chain set aside (this chain is new; their rows are kept in channels_set_aside, their payments stay in the ledger)`,
    );
  else
    logger.info(
      { network, genesisHash: genesis.hash, adopted: result.adopted },
      "payment channels: chain recorded",
    );
}
