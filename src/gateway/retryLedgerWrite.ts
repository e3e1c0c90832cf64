import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../errors/index.js";
import { ledgerFailureMayPass, type PaymentLedger, PaymentTransitionError } from "../ledger/index.js";

export type RetryLedgerWriteParameters<T> = {
  /** One write of a delivered request's money: a payment row's move, a channel's charge, a settle. */
  write: (retry: boolean) => Promise<T>;
  /**
   * What a payment row's move returns when an earlier try went through though its answer was lost (a
   * retry then finds the row already where it moves it); without it, `write` tells that itself.
   */
  alreadyDone?: () => Promise<T>;
  /** How long to keep trying while the database is out (ms). */
  withinMs: number;
  paymentId: number;
  logger: Logger;
};

/** First wait between tries; doubled after each, up to `MAX_RETRY_WAIT_MS`. */
const FIRST_RETRY_WAIT_MS = 50;
const MAX_RETRY_WAIT_MS = 2_000;

/**
 * Writes the money of a request that was already delivered, trying again while the database is out
 * (a dropped connection, a restart, no room): given up, the row would stay `serving` and recovery, which
 * cannot count what was served, would close it as failed, leaving the buyer served for free. A try whose
 * answer was lost may have committed: a retry that finds the row already where it moves it is done.
 */
export async function retryLedgerWrite<T>({
  write,
  alreadyDone,
  withinMs,
  paymentId,
  logger,
}: RetryLedgerWriteParameters<T>): Promise<T> {
  const giveUpAt = Date.now() + withinMs;
  let waitMs = FIRST_RETRY_WAIT_MS;
  for (let tries = 1; ; tries++) {
    try {
      return await write(tries > 1);
    } catch (error) {
      if (alreadyDone && tries > 1 && error instanceof PaymentTransitionError && error.from === error.to)
        return alreadyDone();
      if (!ledgerFailureMayPass(error) || Date.now() + waitMs > giveUpAt) throw error;
      // Told on tries 1, 2, 4, 8, …: a long outage is not one line every two seconds.
      if ((tries & (tries - 1)) === 0)
        logger.warn(
          { paymentId, tries, error: String(error) },
          "ledger unreachable while recording a delivered request's charge; trying again",
        );
      await sleep(waitMs);
      waitMs = Math.min(waitMs * 2, MAX_RETRY_WAIT_MS);
    }
  }
}

/**
 * The writer of one payment row's moves (usage, settling, settled, debt), each tried again while the
 * database is out for up to `withinMs`; a move found already made is done.
 */
export function paymentRowWriter(parameters: {
  ledger: Pick<PaymentLedger, "get">;
  paymentId: number;
  withinMs: number;
  logger: Logger;
}) {
  const { ledger, paymentId, withinMs, logger } = parameters;
  return (write: () => Promise<unknown>) =>
    retryLedgerWrite({ write, alreadyDone: () => ledger.get(paymentId), withinMs, paymentId, logger });
}
