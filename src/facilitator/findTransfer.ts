import { type Address, erc20Abi, type Log, parseEventLogs } from "viem";

export type FindTransferParameters = {
  logs: readonly Log[];
  asset: Address;
  from: Address;
  to: Address;
  amountAtomic: bigint;
};

/** True when `logs` hold an ERC-20 `Transfer` of exactly `amountAtomic` of `asset` from `from` to `to`. */
export function hasMatchingTransfer({
  logs,
  asset,
  from,
  to,
  amountAtomic,
}: FindTransferParameters): boolean {
  const transfers = parseEventLogs({
    abi: erc20Abi,
    eventName: "Transfer",
    logs: logs as Log[],
    strict: true,
  });
  return transfers.some(
    (log) =>
      log.address.toLowerCase() === asset.toLowerCase() &&
      log.args.from.toLowerCase() === from.toLowerCase() &&
      log.args.to.toLowerCase() === to.toLowerCase() &&
      log.args.value === amountAtomic,
  );
}
