import { type Address, erc20Abi, type PublicClient, parseAbi } from "viem";
import { TollgateError } from "../errors/index.js";

const versionAbi = parseAbi(["function version() view returns (string)"]);

export type AssertAssetDomainParameters = {
  chain: Pick<PublicClient, "readContract">;
  asset: Address;
  /** The EIP-712 domain the 402s announce for the asset (`assetDomain`, else the network's USDC's). */
  domain: { name: string; version: string };
  /** Whether the config wrote `assetDomain` (else it is the network's USDC default). */
  configured: boolean;
};

/**
 * Refuses to start when the token answers another EIP-712 name or version than the gateway announces:
 * every signature made on that domain (exact's EIP-3009 transfers, EIP-2612 permits for sponsored
 * approvals) would be refused at verify. What the token does not answer (no `version()`, the chain
 * unreachable) is not held against it.
 */
export async function assertAssetDomain({
  chain,
  asset,
  domain,
  configured,
}: AssertAssetDomainParameters): Promise<void> {
  const read = (abi: typeof erc20Abi | typeof versionAbi, functionName: "name" | "version") =>
    chain
      .readContract({ address: asset, abi, functionName } as Parameters<typeof chain.readContract>[0])
      .then((value) => (typeof value === "string" ? value : undefined))
      .catch(() => undefined);
  const [name, version] = await Promise.all([read(erc20Abi, "name"), read(versionAbi, "version")]);
  const wrong = [
    name !== undefined && name !== domain.name && `named "${name}", not "${domain.name}"`,
    version !== undefined && version !== domain.version && `at version "${version}", not "${domain.version}"`,
  ].filter((part): part is string => typeof part === "string");
  if (wrong.length === 0) return;
  const key = configured ? "assetDomain" : "assetDomain (unset: the network's USDC domain)";
  throw new TollgateError({
    code: "TOLLGATE_CONFIG_INVALID",
    shortMessage: `config key ${key}: the token ${asset} is ${wrong.join(" and ")}, so every exact payment and EIP-2612 permit signed on the announced domain would be refused: set assetDomain to { name: "${name ?? domain.name}", version: "${version ?? domain.version}" }`,
    details: { field: "assetDomain", name, version },
  });
}
