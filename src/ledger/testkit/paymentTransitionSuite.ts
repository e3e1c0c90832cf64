import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { createPaymentLedger } from "../createPaymentLedger.js";
import type { PaymentLedger, PaymentRecord } from "../PaymentLedger.js";
import { PaymentTransitionError } from "../PaymentTransitionError.js";
import type { PaymentStatus } from "../paymentStatus.js";
import type { SqlRow } from "../SqlClient.js";
import type { LedgerHarness } from "./ledgerHarness.js";
import { transactionHash } from "./ledgerHarness.js";
import { expectedTransitions, paymentAt, usage } from "./paymentLifecycle.js";

/** The status machine as the stores enforce it, run against each SQL adapter. */
export function describePaymentTransitions(label: string, current: () => LedgerHarness): void {
  describe(`PaymentLedger transitions (${label})`, () => {
    let harness: LedgerHarness;
    let payments: PaymentLedger;
    beforeEach(async () => {
      harness = current();
      payments = harness.ledger.payments;
      await harness.reset();
    });

    test("refuses a charge above the authorized maximum and leaves the row where it was", async () => {
      const payment = await paymentAt(payments, "serving");
      await assert.rejects(
        payments.recordUsage(payment.id, usage, 50_001n),
        /exceeds the authorized maximum/,
      );
      assert.equal((await payments.get(payment.id))?.status, "serving");
      await payments.recordUsage(payment.id, usage, 50_000n);
      await payments.markSettling(payment.id);
      await assert.rejects(
        payments.markSettled(payment.id, { transaction: transactionHash(2), chargeAtomic: 50_001n }),
        /exceeds the authorized maximum/,
      );
      await assert.rejects(
        payments.markSettled(payment.id, { transaction: "", chargeAtomic: 1n }),
        /transaction/,
      );
      assert.equal((await payments.get(payment.id))?.status, "settling");
    });

    test("enforces the transition table for every status and every move", async () => {
      const moves: { name: string; to: PaymentStatus; run: (id: number) => Promise<unknown> }[] = [
        { name: "markServing", to: "serving", run: (id) => payments.markServing(id) },
        { name: "recordUsage", to: "metered", run: (id) => payments.recordUsage(id, usage, 1n) },
        { name: "markSettling", to: "settling", run: (id) => payments.markSettling(id) },
        {
          name: "markSettled",
          to: "settled",
          run: (id) => payments.markSettled(id, { transaction: transactionHash(3), chargeAtomic: 1_234n }),
        },
        {
          name: "markSettled(0)",
          to: "zero",
          run: (id) => payments.markSettled(id, { transaction: "", chargeAtomic: 0n }),
        },
        { name: "markDebt", to: "debt", run: (id) => payments.markDebt(id, "settle failed") },
        { name: "markFailed", to: "failed", run: (id) => payments.markFailed(id, "backend down") },
        { name: "resolveDebt", to: "settled", run: (id) => payments.resolveDebt(id, transactionHash(4)) },
        {
          name: "markTakenBack",
          to: "debt",
          run: (id) =>
            payments.markTakenBack(id, {
              transaction: transactionHash(0),
              reason: "reorg",
            }),
        },
      ];
      // Each method narrows the table to the moves it stands for.
      const onlyFrom: Record<string, PaymentStatus> = {
        resolveDebt: "debt",
        markDebt: "settling",
        markTakenBack: "settled",
      };
      const statuses: PaymentStatus[] = [
        "claimed",
        "serving",
        "metered",
        "settling",
        "settled",
        "zero",
        "debt",
        "failed",
      ];
      let allowed = 0;
      for (const from of statuses) {
        for (const move of moves) {
          const payment = await paymentAt(payments, from);
          const expected =
            expectedTransitions.has(`${from}>${move.to}`) && (onlyFrom[move.name] ?? from) === from;
          if (expected) {
            allowed++;
            await move.run(payment.id);
            assert.equal((await payments.get(payment.id))?.status, move.to, `${move.name} from ${from}`);
          } else {
            await assert.rejects(move.run(payment.id), (error: unknown) => {
              assert.ok(error instanceof PaymentTransitionError, `${move.name} from ${from} must be refused`);
              assert.equal(error.code, "TOLLGATE_LEDGER_FAILED");
              assert.equal(error.from, from);
              assert.equal(error.to, move.to);
              assert.equal(error.reason, "not_allowed");
              assert.match(error.shortMessage, new RegExp(`from ${from} to ${move.to}`));
              return true;
            });
            assert.equal(
              (await payments.get(payment.id))?.status,
              from,
              `${move.name} from ${from} left the row`,
            );
          }
        }
      }
      // 10 table entries; markSettled also pays a debt (debt → settled), so 11 allowed moves in all.
      assert.equal(allowed, 11);
    });

    test("books a settlement back as a debt only while the row still names that transaction", async () => {
      const payment = await paymentAt(payments, "settled", 7);
      const taken = { reason: "settlement_taken_back: reorg" };
      await assert.rejects(
        payments.markTakenBack(payment.id, { ...taken, transaction: transactionHash(8) }),
        PaymentTransitionError,
      );
      assert.equal((await payments.get(payment.id))?.status, "settled", "another transaction stands");
      const owed = await payments.markTakenBack(payment.id, { ...taken, transaction: transactionHash(7) });
      assert.equal(owed.status, "debt");
      assert.equal(owed.transaction, null);
      assert.equal(owed.settledAt, null);
      assert.equal(owed.error, taken.reason);
      assert.equal(await payments.hasOpenDebt(owed.network, owed.payer), false, "not the payer's doing");
      const paid = await payments.resolveDebt(payment.id, transactionHash(9));
      assert.equal(paid.status, "settled");
      assert.equal(paid.chargeAtomic, 1_234n, "the charge is kept");
    });

    test("lists settled rows once deep enough, a page at a time in booking order", async () => {
      const rows = [];
      for (let n = 20; n < 25; n++) rows.push(await paymentAt(payments, "settled", n));
      const ids = new Set(rows.map((row) => row.id));
      const ours = (page: PaymentRecord[]) => page.filter((row) => ids.has(row.id)).map((row) => row.id);
      assert.deepEqual(
        ours(await payments.settledSince({ untouchedForMs: 60_000, withinSeconds: 300 })),
        [],
        "none is a minute deep",
      );
      const seen: number[] = [];
      let after: { settledAt: Date; id: number } | undefined;
      for (;;) {
        const page = await payments.settledSince({ after, untouchedForMs: 0, withinSeconds: 300, limit: 2 });
        if (page.length === 0) break;
        seen.push(...ours(page));
        const last = page.at(-1)!;
        after = { settledAt: last.settledAt!, id: last.id };
      }
      assert.deepEqual(
        seen,
        rows.map((row) => row.id),
      );
    });

    test("lets only one of two workers move the same row", async () => {
      const payment = await paymentAt(payments, "claimed");
      const outcomes = await Promise.allSettled([
        payments.markServing(payment.id),
        payments.markServing(payment.id),
      ]);
      assert.equal(outcomes.filter((outcome) => outcome.status === "fulfilled").length, 1);
      const refused = outcomes.find((outcome) => outcome.status === "rejected");
      assert.ok(refused?.reason instanceof PaymentTransitionError);
      assert.equal(refused.reason.to, "serving");
      assert.equal(refused.reason.from, "serving");
    });

    test("refuses a move when another worker moved the row right before its update", async () => {
      const payment = await paymentAt(payments, "claimed");
      let interposed = false;
      const racing = createPaymentLedger({
        transaction: (fn) => harness.sql.transaction(fn),
        close: async () => {},
        exec: (sql) => harness.sql.exec(sql),
        async query(sql, params) {
          if (!interposed && sql.trimStart().startsWith("UPDATE")) {
            interposed = true;
            await harness.ledger.payments.markFailed(payment.id, "other worker");
          }
          return harness.sql.query(sql, params);
        },
      });
      await assert.rejects(racing.markServing(payment.id), (error: unknown) => {
        assert.ok(error instanceof PaymentTransitionError);
        assert.equal(error.reason, "not_allowed");
        assert.equal(error.from, "failed");
        assert.equal(error.to, "serving");
        return true;
      });
      assert.equal((await payments.get(payment.id))?.status, "failed");
    });

    test("says concurrent when the row reached an allowed status only after the update missed", async () => {
      const payment = await paymentAt(payments, "claimed");
      let updateMissed = false;
      // recordUsage needs `serving`; the row is `claimed` when it runs, and another worker serves it just after.
      const racing = createPaymentLedger({
        transaction: (fn) => harness.sql.transaction(fn),
        close: async () => {},
        exec: (sql) => harness.sql.exec(sql),
        async query<Row extends SqlRow = SqlRow>(sql: string, params?: readonly unknown[]) {
          if (updateMissed && sql.trimStart().startsWith("SELECT")) {
            updateMissed = false;
            await harness.ledger.payments.markServing(payment.id);
          }
          const rows = await harness.sql.query<Row>(sql, params);
          if (sql.trimStart().startsWith("UPDATE") && rows.length === 0) updateMissed = true;
          return rows;
        },
      });
      await assert.rejects(racing.recordUsage(payment.id, usage, 1n), (error: unknown) => {
        assert.ok(error instanceof PaymentTransitionError);
        assert.equal(error.reason, "concurrent");
        assert.equal(error.from, "serving");
        assert.equal(error.to, "metered");
        return true;
      });
      assert.equal((await payments.get(payment.id))?.status, "serving");
    });

    test("names an unknown payment instead of moving nothing", async () => {
      await assert.rejects(payments.markServing(987_654), /payment 987654 does not exist/);
    });
  });
}
