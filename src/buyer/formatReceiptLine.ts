import { formatMoney } from "../pricing/index.js";
import type { BuyerEvent } from "./BuyerEvent.js";

/**
 * The one-line receipt the CLI prints on stderr: maximum authorized, charged, saved, transaction, network.
 * @example
 * formatReceiptLine(event) // "paid $0.000312 of $0.001200 authorized (saved $0.000888) · tx 0xab… · eip155:137"
 */
export function formatReceiptLine(receipt: Extract<BuyerEvent, { type: "receipt" }>): string {
  // A charge without a transaction is a channel's voucher: the seller claims it later, in a batch.
  const transaction =
    receipt.transaction !== ""
      ? `tx ${receipt.transaction}`
      : receipt.chargedAtomic > 0n
        ? "by voucher, no transaction"
        : "no transaction (nothing charged)";
  const outcome = receipt.success
    ? "paid"
    : `settlement failed (${receipt.errorReason ?? "unknown"}), charged`;
  return `${outcome} ${formatMoney(receipt.chargedAtomic)} of ${formatMoney(receipt.maxAtomic)} authorized (saved ${formatMoney(receipt.savedAtomic)}) · ${transaction} · ${receipt.network}`;
}
