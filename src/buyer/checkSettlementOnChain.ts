import { x402UptoPermit2ProxyAddress } from "@x402/evm";
import {
  type Address,
  erc20Abi,
  type Hex,
  isHash,
  type PublicClient,
  parseEventLogs,
  WaitForTransactionReceiptTimeoutError,
} from "viem";
import { inputSpendsNonce } from "../chain/index.js";
import { authorizationOf } from "./authorizationOf.js";
import type { PaymentAttempt, PaymentContext } from "./authorizePayment.js";
import type { ReadReceipt } from "./settlePaidResponse.js";

/** How long a receipt's transaction is waited for: the buyer's RPC may be a few blocks behind the seller's. */
const TRANSACTION_WAIT_MS = 30_000;

/** What the chain shows of a receipt's transaction: the payer's transfers to payTo in the asset, or why none can be read. */
export type SettlementTransfers = { found: true; transfersAtomic: bigint[] } | { found: false; why: string };

/** What a receipt's transaction says of the charge the receipt states. */
export type SettlementVerdict =
  /** The transaction moved the stated charge. */
  | { kind: "confirmed" }
  /** It moved another amount (`movedAtomic`, at most the signed maximum): book that instead. */
  | { kind: "moved"; movedAtomic: bigint; message: string }
  /** It does not show the payment: the authorization can still move up to its maximum until its deadline. */
  | { kind: "unconfirmed"; message: string };

/**
 * Judges an `upto` receipt against its transaction. One settlement of one authorization is one
 * `Transfer(payer → payTo)` of the asset; a transaction holding several (a facilitator settling
 * several of the payer's authorizations at once) confirms a receipt when one of them is its charge.
 * No transfer of the charge and several others: the one of this authorization cannot be told, so the
 * signed maximum, all it can have moved, is booked.
 */
export function judgeSettlement(
  onChain: SettlementTransfers,
  { statedAtomic, maxAtomic, transaction }: { statedAtomic: bigint; maxAtomic: bigint; transaction: string },
): SettlementVerdict {
  if (!onChain.found)
    return {
      kind: "unconfirmed",
      message: `the receipt's transaction ${transaction || "(none)"} ${onChain.why}; the authorization stays reserved at its maximum until its deadline`,
    };
  const { transfersAtomic } = onChain;
  if (transfersAtomic.includes(statedAtomic)) return { kind: "confirmed" };
  if (transfersAtomic.length === 0)
    return {
      kind: "unconfirmed",
      message: `the receipt's transaction ${transaction} moved nothing from the payer to payTo; the authorization stays reserved at its maximum until its deadline`,
    };
  const only = transfersAtomic.length === 1 ? (transfersAtomic[0] as bigint) : undefined;
  const movedAtomic = only !== undefined && only < maxAtomic ? only : maxAtomic;
  return {
    kind: "moved",
    movedAtomic,
    message:
      only !== undefined
        ? `the receipt states ${statedAtomic}; its transaction ${transaction} moved ${only}`
        : `the receipt states ${statedAtomic}; its transaction ${transaction} moved ${transfersAtomic.join(", ")} from the payer to payTo, none of them that: counted at the maximum ${maxAtomic}`,
  };
}

type ChainReader = Pick<PublicClient, "waitForTransactionReceipt" | "getTransaction" | "getChainId">;

/** Tries a chain read a few times: an RPC's passing failure is not the seller's doing. */
async function withRetries<T>(read: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await read();
    } catch (error) {
      if (attempt >= attempts || error instanceof WaitForTransactionReceiptTimeoutError) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

/**
 * Reads a settlement transaction, waiting for it to be mined. It shows the payment only when it is a
 * call to the x402 upto proxy whose decoded permit spends the authorization's nonce: the proxy then
 * moves exactly what was settled of it, in one `Transfer` of `asset` from `payer` to `payTo`. Any
 * other call (one that only carries the nonce somewhere, a contract of the seller's) proves nothing.
 * Undefined when the chain could not be read.
 */
export async function readSettlementTransfers(
  client: ChainReader,
  query: { transaction: string; nonce: string | undefined; asset: string; payer: string; payTo: string },
  { timeoutMs = TRANSACTION_WAIT_MS }: { timeoutMs?: number } = {},
): Promise<SettlementTransfers | undefined> {
  if (!isHash(query.transaction)) return { found: false, why: "is not a transaction hash" };
  const hash = query.transaction;
  let receipt: Awaited<ReturnType<PublicClient["waitForTransactionReceipt"]>>;
  let transaction: Awaited<ReturnType<PublicClient["getTransaction"]>>;
  try {
    receipt = await withRetries(() =>
      client.waitForTransactionReceipt({
        hash,
        timeout: timeoutMs,
        pollingInterval: Math.min(1_000, Math.max(50, Math.floor(timeoutMs / 20))),
      }),
    );
    transaction = await withRetries(() => client.getTransaction({ hash }));
  } catch (error) {
    if (error instanceof WaitForTransactionReceiptTimeoutError)
      return { found: false, why: `was not found on chain within ${Math.round(timeoutMs / 1000)} s` };
    return undefined;
  }
  if (receipt.status !== "success") return { found: false, why: "reverted" };
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  if (!transaction.to || !same(transaction.to, x402UptoPermit2ProxyAddress))
    return { found: false, why: "is not a call to the x402 upto proxy" };
  const { nonce } = query;
  if (
    nonce === undefined ||
    !inputSpendsNonce(transaction.input, nonce.startsWith("0x") ? (nonce as Hex) : BigInt(nonce), {
      decodedOnly: true,
    })
  )
    return { found: false, why: "does not settle this authorization's nonce" };
  const transfersAtomic = parseEventLogs({ abi: erc20Abi, eventName: "Transfer", logs: receipt.logs })
    .filter(
      (log) =>
        same(log.address, query.asset) && same(log.args.from, query.payer) && same(log.args.to, query.payTo),
    )
    .map((log) => log.args.value);
  return { found: true, transfersAtomic };
}

/**
 * Checks a booked `upto` receipt against its transaction (with an RPC), and corrects the books:
 * - another amount moved: the reservation is booked at what moved (at most the maximum), and a
 *   receipt that stated less than that is disputed (`misstated_charge`);
 * - no transaction, or one that does not show the payment (a receipt of a zero charge, honestly sent
 *   with none, included): the seller can still settle the authorization, so its maximum is reserved
 *   again until the deadline, when the chain says whether it was used (`resolveLapsedReservations`).
 */
export async function checkSettlementOnChain(
  context: PaymentContext,
  client: ChainReader,
  attempt: PaymentAttempt,
  receipt: ReadReceipt,
  options?: { timeoutMs?: number },
): Promise<void> {
  const { offer } = attempt.choice;
  const statedAtomic = receipt.chargedAtomic;
  // The RPC reads one chain: a payment on another is not judged by it.
  if (offer.network !== `eip155:${await withRetries(() => client.getChainId())}`) return;
  // A zero charge sends no transaction, honestly: nothing shows the authorization unused before its deadline.
  const reopen = async (note: string) => {
    await (await context.store()).reopen(attempt.paymentId, note);
    context.emit({ type: "unreceipted", paymentId: attempt.paymentId, origin: attempt.origin, reason: note });
  };
  if (statedAtomic === 0n && !receipt.transaction)
    return reopen(
      "a zero charge names no transaction: the authorization stays reserved at its maximum until its deadline, when the chain shows whether it was used",
    );
  const onChain = await readSettlementTransfers(
    client,
    {
      transaction: receipt.transaction,
      nonce: authorizationOf(attempt.payload).nonce,
      asset: offer.asset,
      payer: context.payer as Address,
      payTo: offer.payTo,
    },
    options,
  );
  // The chain could not be read: the receipt's word stands, as without an RPC.
  if (onChain === undefined) return;
  const verdict = judgeSettlement(onChain, {
    statedAtomic,
    maxAtomic: attempt.maxAtomic,
    transaction: receipt.transaction,
  });
  if (verdict.kind === "confirmed") return;
  const store = await context.store();
  const { paymentId, origin } = attempt;
  if (verdict.kind === "unconfirmed") return reopen(verdict.message);
  await store.correctCharge(paymentId, { chargedAtomic: verdict.movedAtomic, note: verdict.message });
  if (verdict.movedAtomic <= statedAtomic) return;
  // What is disputed and told: the charge that moved, against the one the receipt stated.
  const flagged = {
    origin,
    reason: "misstated_charge" as const,
    chargedAtomic: verdict.movedAtomic,
    justifiedAtomic: statedAtomic,
    maxAtomic: attempt.maxAtomic,
    transaction: receipt.transaction,
    network: receipt.network,
  };
  const disputeId = await store.recordDispute({
    ...flagged,
    reservationId: paymentId,
    details: { message: verdict.message, url: attempt.url, statedAtomic: statedAtomic.toString() },
  });
  context.emit({ ...flagged, type: "overcharge", paymentId, usage: receipt.usage, disputeId });
}
