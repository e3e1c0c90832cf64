import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { type Hex, type PublicClient, TransactionNotFoundError, TransactionReceiptNotFoundError } from "viem";
import { type Logger, silentLogger } from "../errors/index.js";
import { findSettlementOnChain, type SettlementEvidence } from "../facilitator/index.js";
import {
  type AuthorizationKeyInput,
  ledgerFailureMayPass,
  type PaymentLedger,
  type PaymentRecord,
  PaymentTransitionError,
  type SettlementLog,
} from "../ledger/index.js";
import { DEFAULT_HEARTBEAT_MS } from "./createBillingSession.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import { releaseDroppedPayment } from "./releaseDroppedPayment.js";
import {
  AUTHORIZATION_LAPSED,
  authorizationDeadlineOf,
  authorizationLapsed,
  SETTLEMENT_IN_PROGRESS,
  SETTLEMENT_PENDING,
  settleRecordedCharge,
} from "./settleRecordedCharge.js";

export { AUTHORIZATION_LAPSED };

export type CreatePaymentRecoveryParameters = {
  payments: PaymentLedger;
  /** The settlement log of an in-process facilitator on the same database, reconciled with the chain too. */
  settlements?: SettlementLog | undefined;
  facilitator: FacilitatorLike;
  /** Chain reads (Permit2 nonces, `Transfer` logs); without them a `settling` row is never settled again. */
  chain?: PublicClient | undefined;
  /** The network this gateway bills on; rows of another network are left alone. */
  network: string;
  /** The facilitator that settles for this gateway: an upto authorization names it, and only it can settle. */
  facilitatorAddress?: string | undefined;
  /**
   * Rows touched more recently than this are a live request (maybe on a sibling replica): left alone. The
   * passes `start` runs while the gateway serves never take a row younger than three heartbeats (a live
   * request refreshes its row every 10 s), whatever this says; `runOnce` (the pass at start) uses it as is.
   */
  graceMs: number;
  /** `settling` rows (and in-flight settlement records) wait longer: a live settle may still be running. */
  settlingGraceMs: number;
  settleTimeoutMs?: number | undefined;
  /**
   * Open debts re-examined per pass (chain first, then settled again while the authorization is valid), in
   * turn: each pass goes on after the last debt the one before it retried; 0: none.
   */
  debtRetriesPerPass?: number | undefined;
  /**
   * How long after it was booked a settlement is read back from the chain, once (ms; default 30 s). One the
   * chain no longer holds (its block reorganised away) becomes a debt, settled again while it can be.
   */
  confirmAfterMs?: number | undefined;
  /** Settlements booked longer ago than this are not read back (s): the gateway's `maxTimeoutSeconds`. */
  confirmWithinSeconds?: number | undefined;
  logger?: Logger | undefined;
};

/** What one recovery pass did. */
export type RecoveryReport = {
  /** Pending rows older than the grace period that this pass looked at. */
  examined: number;
  /** claimed / serving rows closed as failed (nothing charged). */
  failed: number;
  settled: number;
  zero: number;
  debt: number;
  /** Rows left for a later pass (chain unreachable, settlement still in flight, another network or facilitator). */
  left: number;
  debtsRetried: number;
  debtsPaid: number;
  /** Settlements read back from the chain this pass, and those it no longer holds (booked as debts). */
  confirmed: number;
  takenBack: number;
  /** Rows whose recovery threw (logged); they stay pending. */
  errors: number;
};

/** Finishes what a stopped gateway left pending; see the README's recovery rules. */
export type PaymentRecovery = {
  /** One pass over pending rows and recent debts; concurrent calls share the running pass. */
  runOnce(): Promise<RecoveryReport>;
  /** Runs a pass every `intervalMs` until `stop()`. */
  start(intervalMs: number): void;
  /** Stops the timer and waits for a running pass. */
  stop(): Promise<void>;
};

type RowOutcome = "failed" | "settled" | "zero" | "debt" | "left";

/** Charged rows of one pass that only another facilitator can settle: what the operator must act on. */
type Stranded = { rows: number; chargeAtomic: bigint; facilitators: Set<string>; firstDeadline?: bigint };

/** A row refreshed within three heartbeats may be a live request's: passes while serving leave it alone. */
const LIVE_ROW_MIN_AGE_MS = 3 * DEFAULT_HEARTBEAT_MS;

/** Settled rows read back from the chain per page. */
const CONFIRM_PAGE = 200;
/**
 * At most this many settled rows are read back in one pass (one receipt each, one after another): on a busy
 * gateway they are booked as fast as they are read, and the debts, the stranded rows' next pass and a
 * stopping gateway would wait behind them. The next pass goes on from the last one read.
 */
const CONFIRM_ROWS_PER_PASS = 5 * CONFIRM_PAGE;

/** Why a settlement the chain no longer holds is owed again. */
export const SETTLEMENT_TAKEN_BACK =
  "settlement_taken_back: the chain no longer holds its transaction (its block was reorganised away); settled again while the authorization is valid";

/** Only an hour past the deadline: older debts are not worth an RPC round each pass. */
const DEBT_RECHECK_WINDOW_SECONDS = 3_600n;

/**
 * Recovery of payments a stopped (killed) gateway left unfinished, run at start and then periodically:
 * - `claimed` / `serving` → `failed`: usage is unknown, and a buyer is never charged for what we cannot count;
 * - `metered` → settled from the recorded charge;
 * - `settling` → reconciled from the chain first (nonce spent and a matching `Transfer` → `settled` with that
 *   transaction; spent without one → `debt`); an unspent nonce is settled again, which the facilitator's
 *   settlement log and Permit2's nonce make safe: nothing is ever settled twice;
 * - recent `debt` rows: paid if the chain shows the transfer, settled again while the authorization is valid.
 */
export function createPaymentRecovery({
  payments,
  settlements,
  facilitator,
  chain,
  network,
  facilitatorAddress,
  graceMs,
  settlingGraceMs,
  settleTimeoutMs,
  debtRetriesPerPass = 20,
  confirmAfterMs = 30_000,
  confirmWithinSeconds = 300,
  logger = silentLogger,
}: CreatePaymentRecoveryParameters): PaymentRecovery {
  let running: Promise<RecoveryReport> | undefined;
  // Set by stop(): the pass under way reads no more settlements back.
  let stopping = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  // The id of the last debt retried: the next pass starts after it, so debts whose authorizations stay
  // valid for ever (a deadline signed far ahead) cannot take every retry from the debts behind them.
  let lastDebtRetried = 0;
  /**
   * While the ledger is out, no live request can refresh its row, nor record what it delivered: when
   * it answers again, the rows look untouched for as long as it was out. `ledgerOut` is set by a pass
   * the ledger failed, `ledgerBackAt` by the first pass after: until the grace period has passed since,
   * claimed and serving rows are left to the requests still finishing them.
   */
  let ledgerOut = false;
  let ledgerBackAt: number | undefined;
  const noteLedgerFailure = (error: unknown) => {
    if (ledgerFailureMayPass(error)) ledgerOut = true;
  };

  const keyOf = (row: PaymentRecord): AuthorizationKeyInput => ({
    network: row.network,
    payer: row.payer,
    nonce: row.nonce,
  });

  /** The facilitator an upto authorization names (its witness), the only one that can settle it. */
  const witnessFacilitatorOf = (row: PaymentRecord): string | undefined => {
    const witness = (
      row.paymentPayload as { payload?: { permit2Authorization?: { witness?: { facilitator?: unknown } } } }
    ).payload?.permit2Authorization?.witness;
    return typeof witness?.facilitator === "string" ? witness.facilitator : undefined;
  };

  /** Whether this gateway's facilitator may settle the row (an upto witness names its facilitator). */
  const canSettle = (row: PaymentRecord): boolean => {
    if (row.network !== network) return false;
    // A channel's charge is recorded with the channel's own row, never settled by itself.
    if (row.scheme === "batch-settlement") return false;
    if (row.scheme !== "upto" || facilitatorAddress === undefined) return true;
    return witnessFacilitatorOf(row)?.toLowerCase() === facilitatorAddress.toLowerCase();
  };

  /**
   * Counts a row of this network that names another facilitator (a restart with another key, a
   * replica scaled down): it stays charged and unsettled until that facilitator runs again.
   */
  const noteStranded = (row: PaymentRecord, stranded: Stranded): void => {
    const other = witnessFacilitatorOf(row);
    if (row.network !== network || row.scheme !== "upto" || other === undefined) return;
    stranded.rows++;
    stranded.chargeAtomic += row.chargeAtomic ?? 0n;
    stranded.facilitators.add(other);
    const deadline = deadlineOf(row);
    if (deadline !== undefined && (stranded.firstDeadline === undefined || deadline < stranded.firstDeadline))
      stranded.firstDeadline = deadline;
  };

  /**
   * One warning per pass for the rows only another facilitator can settle: left alone they lapse
   * unpaid at their deadlines, and nothing else in the gateway would say so.
   */
  const warnStranded = (stranded: Stranded): void => {
    if (stranded.rows === 0) return;
    const facilitators = [...stranded.facilitators];
    const firstDeadline =
      stranded.firstDeadline === undefined
        ? undefined
        : new Date(Number(stranded.firstDeadline) * 1000).toISOString();
    logger.warn(
      {
        rows: stranded.rows,
        chargeAtomic: stranded.chargeAtomic.toString(),
        facilitators,
        facilitatorAddress,
        firstDeadline,
      },
      `recovery: ${stranded.rows} upto payment(s), ${stranded.chargeAtomic} atomic units charged in all, can be settled only by facilitator ${facilitators.join(", ")}, not by this gateway's (${facilitatorAddress}): start a gateway on this ledger with that facilitator's key before the authorizations' deadlines${firstDeadline ? ` (the first at ${firstDeadline})` : ""}, or they lapse unpaid`,
    );
  };

  const evidenceFor = (row: PaymentRecord): Promise<SettlementEvidence> => {
    if (!chain) throw new Error("no chain client");
    return findSettlementOnChain({
      client: chain,
      payload: row.paymentPayload as PaymentPayload,
      asset: row.asset,
      payTo: row.payTo,
      // From when the row was made, however long the gateway was down.
      since: row.createdAt,
    });
  };

  const settledResult = (row: PaymentRecord, transaction: string, amountAtomic: bigint): SettleResponse => ({
    success: true,
    transaction,
    network: row.network as SettleResponse["network"],
    payer: row.payer,
    amount: amountAtomic.toString(),
  });

  /** A `settling` row: reconcile with the facilitator's log and the chain, then settle only if nothing moved. */
  async function finishSettling(row: PaymentRecord): Promise<RowOutcome> {
    const chargeAtomic = row.chargeAtomic ?? 0n;
    if (chargeAtomic === 0n) {
      // upto with a zero charge sends no transaction: nothing can have moved.
      await payments.markSettled(row.id, { transaction: "", chargeAtomic: 0n });
      return "zero";
    }
    const key = keyOf(row);
    const logged = await settlements?.get(key);
    if (logged?.status === "succeeded" && logged.transaction) {
      await payments.markSettled(row.id, { transaction: logged.transaction, chargeAtomic });
      return "settled";
    }
    if (!chain) return "left";
    const evidence = await evidenceFor(row);
    if (evidence.state === "settled") {
      if (logged?.status === "in_flight") {
        await settlements?.complete(key, {
          transaction: evidence.transaction,
          result: settledResult(row, evidence.transaction, evidence.amountAtomic),
        });
      }
      await payments.markSettled(row.id, {
        transaction: evidence.transaction,
        chargeAtomic: evidence.amountAtomic,
      });
      return "settled";
    }
    if (evidence.state === "spent_without_transfer") {
      await payments.markDebt(row.id, "authorization_spent_without_matching_transfer");
      return "debt";
    }
    if (logged?.status === "in_flight") {
      // A settle that began and never finished, and the nonce is unspent: mark it failed so it may be tried
      // again, unless it is recent enough to still be running somewhere.
      if (Date.now() - logged.updatedAt.getTime() < settlingGraceMs) return "left";
      await settlements?.fail(key, {
        result: {
          success: false,
          errorReason: "abandoned_unspent",
          transaction: "",
          network: row.network,
          payer: row.payer,
        },
      });
    }
    if (authorizationLapsed(row.paymentPayload as PaymentPayload)) {
      // Its authorization lapsed before this gateway settled it (it was down, or its facilitator was):
      // the charge is owed but can no longer be collected, and the payer, who did nothing wrong, is not
      // refused for it.
      await payments.markDebt(row.id, AUTHORIZATION_LAPSED, { blocksPayer: false });
      return "debt";
    }
    const settlement = await settleRecordedCharge({
      ledger: payments,
      facilitator,
      logger,
      paymentId: row.id,
      payload: row.paymentPayload as PaymentPayload,
      requirements: row.paymentRequirements as PaymentRequirements,
      chargeAtomic,
      settleTimeoutMs,
    });
    if (settlement.success) return "settled";
    if (settlement.errorReason === SETTLEMENT_IN_PROGRESS || settlement.errorReason === SETTLEMENT_PENDING)
      return "left";
    return "debt";
  }

  async function recoverRow(row: PaymentRecord, stranded: Stranded, minAgeMs: number): Promise<RowOutcome> {
    switch (row.status) {
      case "claimed":
      case "serving":
        // A request that delivered while the ledger was out may be recording its charge right now.
        if (ledgerBackAt !== undefined && Date.now() - ledgerBackAt < minAgeMs) return "left";
        // Output may have reached the buyer, but how much is unknown: we never charge what we cannot count.
        await payments.markFailed(row.id, "gateway_restarted: usage unknown, nothing charged");
        // Never to be settled: a permit nonce its facilitator holds for it is free for the payer again.
        await releaseDroppedPayment({
          facilitator,
          payload: row.paymentPayload as PaymentPayload,
          requirements: row.paymentRequirements as PaymentRequirements,
          logger,
        });
        return "failed";
      case "metered":
        if (!canSettle(row)) {
          noteStranded(row, stranded);
          return "left";
        }
        await payments.markSettling(row.id);
        return finishSettling(await reload(row));
      case "settling":
        if (!canSettle(row)) {
          noteStranded(row, stranded);
          return "left";
        }
        if (Date.now() - row.updatedAt.getTime() < settlingGraceMs) return "left";
        return finishSettling(row);
      default:
        return "left";
    }
  }

  const reload = async (row: PaymentRecord) => (await payments.get(row.id)) ?? row;

  const deadlineOf = (row: PaymentRecord): bigint | undefined =>
    authorizationDeadlineOf(row.paymentPayload as PaymentPayload);

  /** A debt: paid if the chain shows the transfer; otherwise settled again while its authorization is valid. */
  async function retryDebt(row: PaymentRecord): Promise<boolean> {
    const chargeAtomic = row.chargeAtomic ?? 0n;
    if (chain) {
      const evidence = await evidenceFor(row);
      if (evidence.state === "settled") {
        await payments.resolveDebt(row.id, evidence.transaction);
        return true;
      }
      if (evidence.state === "spent_without_transfer") return false;
    }
    if (authorizationLapsed(row.paymentPayload as PaymentPayload)) return false;
    const settlement = await facilitator.settle(row.paymentPayload as PaymentPayload, {
      ...(row.paymentRequirements as PaymentRequirements),
      amount: chargeAtomic.toString(),
    });
    if (!settlement.success || !settlement.transaction) return false;
    await payments.resolveDebt(row.id, settlement.transaction);
    logger.info(
      { paymentId: row.id, transaction: settlement.transaction },
      "recovery: debt settled on retry",
    );
    return true;
  }

  /**
   * Whether the chain still holds a settled row's transaction: `held` (or its transfer came by another
   * transaction), `pending` (waiting in the mempool again: read next pass), or it was booked as a debt.
   */
  async function confirmSettled(row: PaymentRecord): Promise<"held" | "pending" | "takenBack"> {
    if (!chain || !row.transaction) return "held";
    const hash = row.transaction as Hex;
    const receipt = await chain
      .getTransactionReceipt({ hash })
      .catch((error: unknown) =>
        error instanceof TransactionReceiptNotFoundError ? undefined : Promise.reject(error),
      );
    if (receipt?.status === "success") {
      missingSince.delete(row.id);
      return "held";
    }
    if (receipt === undefined) {
      const sent = await chain
        .getTransaction({ hash })
        .catch((error: unknown) =>
          error instanceof TransactionNotFoundError ? undefined : Promise.reject(error),
        );
      if (sent !== undefined) return "pending";
      // A node that has not indexed the transaction yet answers the same: it is acted on only when still
      // missing on a later pass, `confirmAfterMs` after it was first found missing.
      const since = missingSince.get(row.id);
      if (since === undefined) missingSince.set(row.id, Date.now());
      if (since === undefined || Date.now() - since < confirmAfterMs) return "pending";
    }
    missingSince.delete(row.id);
    const evidence = await evidenceFor(row);
    if (evidence.state === "settled") return "held";
    if (evidence.state === "spent_without_transfer") {
      // The payer's doing (its nonce burnt in the branch that replaced the settlement), or a node whose
      // logs lag behind its state: the two cannot be told apart, so no payer is refused on it.
      logger.warn(
        { paymentId: row.id, payer: row.payer, transaction: row.transaction },
        "recovery: the chain holds neither this settlement nor a matching transfer, though its authorization is spent (a node whose logs lag answers so too); left settled, tollgate reconcile reports it if it stays so",
      );
      return "held";
    }
    await payments.markTakenBack(row.id, {
      transaction: row.transaction,
      reason: SETTLEMENT_TAKEN_BACK,
    });
    return "takenBack";
  }

  // Settlements found missing, and since when (ms): acted on once still missing a pass later.
  const missingSince = new Map<number, number>();
  // The last settled row read back (by booking time, then id): each settlement is read back once.
  let confirmCursor: { settledAt: Date; id: number } | undefined;

  /** Reads back the settlements booked since the last pass, once they are `confirmAfterMs` deep. */
  async function confirmSettlements(report: RecoveryReport): Promise<void> {
    for (let read = 0; read < CONFIRM_ROWS_PER_PASS; read += CONFIRM_PAGE) {
      const rows = await payments.settledSince({
        after: confirmCursor,
        untouchedForMs: confirmAfterMs,
        withinSeconds: confirmWithinSeconds,
        limit: CONFIRM_PAGE,
      });
      for (const row of rows) {
        if (stopping) return;
        if (canSettle(row) && row.transaction) {
          let outcome: Awaited<ReturnType<typeof confirmSettled>>;
          try {
            outcome = await confirmSettled(row);
          } catch (error) {
            noteLedgerFailure(error);
            if (!(error instanceof PaymentTransitionError)) {
              // The chain (or the ledger) did not answer: read again from this row next pass.
              logger.warn(
                { paymentId: row.id, error: String(error) },
                "recovery: a settlement could not be read back from the chain",
              );
              return;
            }
            outcome = "held";
          }
          if (outcome === "pending") return;
          report.confirmed++;
          if (outcome === "takenBack") report.takenBack++;
        }
        if (row.settledAt) confirmCursor = { settledAt: row.settledAt, id: row.id };
      }
      if (rows.length < CONFIRM_PAGE) return;
    }
  }

  async function pass(minAgeMs: number): Promise<RecoveryReport> {
    const report: RecoveryReport = {
      examined: 0,
      failed: 0,
      settled: 0,
      zero: 0,
      debt: 0,
      left: 0,
      debtsRetried: 0,
      debtsPaid: 0,
      confirmed: 0,
      takenBack: 0,
      errors: 0,
    };
    // Measured by the database's clock, which wrote updated_at: a replica's own clock may be off.
    let rows: PaymentRecord[];
    try {
      rows = await payments.pendingForRecovery({ untouchedForMs: minAgeMs });
    } catch (error) {
      noteLedgerFailure(error);
      throw error;
    }
    if (ledgerOut) {
      ledgerOut = false;
      ledgerBackAt = Date.now();
    }
    const stranded: Stranded = { rows: 0, chargeAtomic: 0n, facilitators: new Set() };
    for (const row of rows) {
      report.examined++;
      try {
        report[await recoverRow(row, stranded, minAgeMs)]++;
      } catch (error) {
        noteLedgerFailure(error);
        if (error instanceof PaymentTransitionError) {
          // Someone else (the live request, a sibling's recovery) moved the row first: theirs stands.
          report.left++;
          continue;
        }
        report.errors++;
        logger.warn(
          { paymentId: row.id, status: row.status, error: String(error) },
          "recovery: row left pending",
        );
      }
    }
    warnStranded(stranded);
    // Before the debts: a settlement the chain took back is settled again in the same pass.
    if (chain)
      await confirmSettlements(report).catch((error: unknown) => {
        noteLedgerFailure(error);
        logger.warn({ error: String(error) }, "recovery: settlements could not be read back");
      });
    if (debtRetriesPerPass > 0) {
      const now = BigInt(Math.floor(Date.now() / 1000));
      const open = (await payments.openDebts()).filter(
        (row) => canSettle(row) && (deadlineOf(row) ?? 0n) + DEBT_RECHECK_WINDOW_SECONDS > now,
      );
      const debts = [
        ...open.filter((row) => row.id > lastDebtRetried),
        ...open.filter((row) => row.id <= lastDebtRetried),
      ].slice(0, debtRetriesPerPass);
      lastDebtRetried = debts.at(-1)?.id ?? 0;
      for (const row of debts) {
        report.debtsRetried++;
        try {
          if (await retryDebt(row)) report.debtsPaid++;
        } catch (error) {
          if (!(error instanceof PaymentTransitionError))
            logger.warn({ paymentId: row.id, error: String(error) }, "recovery: debt retry failed");
        }
      }
    }
    if (report.examined > 0 || report.debtsPaid > 0 || report.takenBack > 0)
      logger.info(report, "recovery pass");
    return report;
  }

  const runOnce = (minAgeMs = graceMs) => {
    if (!running) running = pass(minAgeMs).finally(() => (running = undefined));
    return running;
  };

  return {
    runOnce: () => runOnce(),
    start(intervalMs) {
      if (timer) return;
      timer = setInterval(() => {
        runOnce(Math.max(graceMs, LIVE_ROW_MIN_AGE_MS)).catch((error: unknown) =>
          logger.warn({ error: String(error) }, "recovery pass failed"),
        );
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      stopping = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await running?.catch(() => undefined);
      stopping = false;
    },
  };
}
