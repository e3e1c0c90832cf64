import { formatMoney } from "../pricing/index.js";
import type { BuyerEvent } from "./BuyerEvent.js";

/**
 * The one-line receipt the CLI prints on stderr: maximum authorized, charged, saved, transaction, network.
 * @example
 * formatReceiptLine(event) // "paid $0.000312 of $0.001200 authorized (saved $0.000888) · tx 0xab… · eip155:137"
 */
export function formatReceiptLine(receipt: Extract<BuyerEvent, { type: "receipt" }>): string {
  const outcome = receipt.success
    ? "paid"
    : `settlement failed (${receipt.errorReason ?? "unknown"}), charged`;
  return `${outcome} ${formatMoney(receipt.chargedAtomic)} of ${formatMoney(receipt.maxAtomic)} authorized (saved ${formatMoney(receipt.savedAtomic)}) · ${describeTransaction(receipt)} · ${receipt.network}`;
}

/**
 * What a settlement's transaction is, in words: the charge's own, a channel deposit's (which moved
 * the deposit into escrow, not the charge), none for a voucher, or none for nothing charged.
 */
export function describeTransaction({
  transaction,
  chargedAtomic,
  depositAtomic,
}: {
  transaction: string;
  chargedAtomic: bigint;
  depositAtomic?: bigint | undefined;
}): string {
  if (transaction !== "" && depositAtomic !== undefined)
    return `deposited ${formatMoney(depositAtomic)} into a payment channel, tx ${transaction}`;
  if (transaction !== "") return `tx ${transaction}`;
  // A charge without a transaction is a channel's voucher: the seller claims it later, in a batch.
  return chargedAtomic > 0n ? "by voucher, no transaction" : "no transaction (nothing charged)";
}
