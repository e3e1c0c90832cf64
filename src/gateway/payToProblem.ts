import {
  BATCH_SETTLEMENT_ADDRESS,
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  PERMIT2_ADDRESS,
  x402ExactPermit2ProxyAddress,
  x402UptoPermit2ProxyAddress,
} from "@x402/evm";

/** Contracts of the payment path itself: tokens sent to them stay there, and no one can take them out. */
const PAYMENT_CONTRACTS: ReadonlyArray<[string, string]> = [
  [PERMIT2_ADDRESS, "the Permit2 contract"],
  [x402UptoPermit2ProxyAddress, "the x402 upto Permit2 proxy"],
  [x402ExactPermit2ProxyAddress, "the x402 exact Permit2 proxy"],
  [BATCH_SETTLEMENT_ADDRESS, "the x402 batch-settlement contract"],
  [ERC3009_DEPOSIT_COLLECTOR_ADDRESS, "the x402 ERC-3009 deposit collector"],
  ["0x4020425FAf3B746C082C2f942b4E5159887B0005", "the x402 Permit2 deposit collector"],
];

/**
 * Why `payTo` cannot receive this gateway's money, or undefined when it can: the zero address (the
 * token refuses every transfer to it, so every payment fails), an address of the chain's own (a
 * precompile, or the range kept for them: no one holds its key; the example config's placeholder is
 * one), the settlement token itself or a contract of the payment path (money sent there could never be
 * taken out).
 */
export function payToProblem(payTo: string, asset: string | undefined): string | undefined {
  const same = (address: string) => address.toLowerCase() === payTo.toLowerCase();
  if (/^0x0{40}$/.test(payTo))
    return "payTo is the zero address: the token refuses every transfer to it, so every payment would be refused (buyers see permit2_simulation_failed); set payTo to an address you control";
  // 0x…0001 to 0x…ffff: precompiles (ecrecover at 0x…01, P-256 at 0x…0100 on rollups) and the range kept for them.
  if (/^0x0{36}[0-9a-fA-F]{4}$/.test(payTo))
    return `payTo ${payTo} is an address the chain keeps for its own precompiles (the example config's placeholder is one): no one holds its key, so money paid to it could never be spent; set payTo to an address you control`;
  if (asset !== undefined && same(asset))
    return `payTo is the settlement token's own address (${asset}): money paid to it could never be taken out; set payTo to an address you control`;
  const contract = PAYMENT_CONTRACTS.find(([address]) => same(address));
  if (contract)
    return `payTo is ${contract[1]} (${contract[0]}): money paid to it could never be taken out; set payTo to an address you control`;
  return undefined;
}
