import type { PublicClient } from "viem";
import { type Logger, TollgateError } from "../errors/index.js";

export type AssertRpcChainParameters = {
  chain: Pick<PublicClient, "getChainId">;
  /** The CAIP-2 network the config sells on, and its chain id. */
  network: `eip155:${number}`;
  chainId: number;
  rpcUrl: string | undefined;
  logger: Logger;
};

/**
 * Refuses to start on an RPC that answers as another chain than the configured network: every payment,
 * signed for the network's chain, would fail its verify there (`permit2_simulation_failed`) and no
 * buyer could pay. An RPC that does not answer is left to the first payment's verify (`503`).
 */
export async function assertRpcChain({
  chain,
  network,
  chainId,
  rpcUrl,
  logger,
}: AssertRpcChainParameters): Promise<void> {
  let answered: number;
  try {
    answered = await chain.getChainId();
  } catch (error) {
    logger.warn({ rpcUrl, error: String(error) }, "the RPC did not say its chain id at start");
    return;
  }
  if (answered !== chainId)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `config key rpcUrl: ${rpcUrl ?? "the RPC"} is chain ${answered}, not ${network}: every payment, signed for ${network}, would be refused; set rpcUrl to an RPC of ${network}, or network to eip155:${answered}`,
      details: { field: "rpcUrl", answered, network },
    });
}
