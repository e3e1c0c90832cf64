import type { PaymentPayload } from "@x402/core/types";
import { type Address, erc20Abi, getAddress, type Hex, type PublicClient } from "viem";
import { inputSpendsNonce, isNonceSpent } from "../chain/index.js";

/** What the chain says about one authorization's settlement. */
export type SettlementEvidence =
  /** The nonce is unused: nothing was ever settled; settling again is safe. */
  | { state: "unspent" }
  /** The nonce is used by a transaction that moved `amountAtomic` from the payer to payTo. */
  | { state: "settled"; transaction: Hex; amountAtomic: bigint; blockNumber: bigint }
  /** The nonce is used, but no transfer of this authorization to payTo was found in the searched blocks. */
  | { state: "spent_without_transfer" };

export type FindSettlementOnChainParameters = {
  client: PublicClient;
  payload: PaymentPayload;
  /** The token and the recipient the authorization pays. */
  asset: string;
  payTo: string;
  /** Search `Transfer` logs from this block (default: the block of `since`, else `lookbackBlocks` before the latest). */
  fromBlock?: bigint;
  /**
   * When the authorization was received (its ledger row's creation): it cannot have been settled before,
   * so the search starts at the block of that time (less `SINCE_MARGIN_SECONDS` for clocks), however long ago.
   */
  since?: Date;
  /** How far back to search when `fromBlock` is not given; default 100,000 blocks. */
  lookbackBlocks?: bigint;
  /** Blocks per `eth_getLogs` call; default 10,000 (public RPCs cap the range). */
  blocksPerQuery?: bigint;
};

/** How far before `since` the search starts: the gateway's clock and the chain's may differ. */
const SINCE_MARGIN_SECONDS = 600n;

/** The last block whose timestamp is at or before `timestamp` (seconds), or 0: a binary search on block times. */
async function blockAtOrBefore(client: PublicClient, latest: bigint, timestamp: bigint): Promise<bigint> {
  let low = 0n;
  let high = latest;
  while (low < high) {
    const middle = (low + high + 1n) / 2n;
    const block = await client.getBlock({ blockNumber: middle });
    if (block.timestamp <= timestamp) low = middle;
    else high = middle - 1n;
  }
  return low;
}

type Authorization =
  | { kind: "permit2"; owner: Address; nonce: bigint }
  | { kind: "eip3009"; owner: Address; nonce: Hex };

/** The payer and nonce of an upto / exact payload, or undefined for a shape we do not know. */
function authorizationOf(payload: PaymentPayload): Authorization | undefined {
  const inner = payload.payload as {
    permit2Authorization?: { from?: unknown; nonce?: unknown };
    authorization?: { from?: unknown; nonce?: unknown };
  };
  const permit = inner.permit2Authorization;
  if (permit && typeof permit.from === "string" && typeof permit.nonce === "string") {
    return { kind: "permit2", owner: getAddress(permit.from), nonce: BigInt(permit.nonce) };
  }
  const auth = inner.authorization;
  if (auth && typeof auth.from === "string" && typeof auth.nonce === "string") {
    return { kind: "eip3009", owner: getAddress(auth.from), nonce: auth.nonce as Hex };
  }
  return undefined;
}

/** True when the authorization's nonce is used on chain (Permit2 `nonceBitmap`, or EIP-3009 `authorizationState`). */
export async function isAuthorizationSpent(
  client: PublicClient,
  payload: PaymentPayload,
  asset: string,
): Promise<boolean> {
  const authorization = authorizationOf(payload);
  if (!authorization) throw new Error("payment payload carries no Permit2 or EIP-3009 authorization");
  return isNonceSpent(
    client,
    authorization.kind === "eip3009" ? { ...authorization, asset: getAddress(asset) } : authorization,
  );
}

/**
 * Reconciles one authorization with the chain: is its nonce spent, and by which transfer to payTo?
 * A crashed gateway uses this before settling again, so that nothing is ever settled twice.
 * @example
 * const evidence = await findSettlementOnChain({ client, payload, asset, payTo });
 * if (evidence.state === "settled") await ledger.markSettled(id, { transaction: evidence.transaction, chargeAtomic });
 */
export async function findSettlementOnChain({
  client,
  payload,
  asset,
  payTo,
  fromBlock,
  since,
  lookbackBlocks = 100_000n,
  blocksPerQuery = 10_000n,
}: FindSettlementOnChainParameters): Promise<SettlementEvidence> {
  const authorization = authorizationOf(payload);
  if (!authorization) throw new Error("payment payload carries no Permit2 or EIP-3009 authorization");
  if (!(await isAuthorizationSpent(client, payload, asset))) return { state: "unspent" };

  const latest = await client.getBlockNumber({ cacheTime: 0 });
  const start =
    fromBlock ??
    (since !== undefined
      ? await blockAtOrBefore(
          client,
          latest,
          BigInt(Math.floor(since.getTime() / 1000)) - SINCE_MARGIN_SECONDS,
        )
      : latest > lookbackBlocks
        ? latest - lookbackBlocks
        : 0n);
  // From `since`, oldest range first: the settlement followed the row's creation. Otherwise newest first:
  // a crash-time settlement is recent.
  const ranges: Array<[bigint, bigint]> = [];
  for (let to = latest; to >= start; to -= blocksPerQuery) {
    const from = to - blocksPerQuery + 1n > start ? to - blocksPerQuery + 1n : start;
    ranges.push([from, to]);
    if (from === start) break;
  }
  if (since !== undefined) ranges.reverse();
  for (const [from, to] of ranges) {
    const logs = await client.getLogs({
      address: getAddress(asset),
      event: erc20Abi.find((item) => item.type === "event" && item.name === "Transfer") as Extract<
        (typeof erc20Abi)[number],
        { type: "event"; name: "Transfer" }
      >,
      args: { from: authorization.owner, to: getAddress(payTo) },
      fromBlock: from,
      toBlock: to,
    });
    for (const log of logs.reverse()) {
      const transaction = await client.getTransaction({ hash: log.transactionHash });
      if (inputSpendsNonce(transaction.input, authorization.nonce)) {
        return {
          state: "settled",
          transaction: log.transactionHash,
          amountAtomic: log.args.value ?? 0n,
          blockNumber: log.blockNumber,
        };
      }
    }
  }
  return { state: "spent_without_transfer" };
}
