import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { isTollgateError } from "../../errors/index.js";
import type { PaymentLedger } from "../PaymentLedger.js";
import { PaymentTransitionError } from "../PaymentTransitionError.js";
import type { PaymentStatus } from "../paymentStatus.js";
import { claimInput, type LedgerHarness, payerAddress, transactionHash } from "./ledgerHarness.js";
import { paymentAt, usage } from "./paymentLifecycle.js";

/** The payment ledger's behaviour, run against each SQL adapter. */
export function describePaymentLedger(label: string, current: () => LedgerHarness): void {
  describe(`PaymentLedger (${label})`, () => {
    let harness: LedgerHarness;
    let payments: PaymentLedger;
    beforeEach(async () => {
      harness = current();
      payments = harness.ledger.payments;
      await harness.reset();
    });

    test("claims within funds: concurrent claims of one payer never reserve more than its funds", async () => {
      const payer = payerAddress(7);
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 350n, { serving: true }),
        ),
      );
      assert.equal(results.filter((result) => result.claimed).length, 3);
      for (const result of results) {
        if (!result.claimed && result.existing === undefined) {
          assert.equal(result.fundsAtomic, 350n);
          assert.equal(result.reservedAtomic, 300n);
        }
      }
      // A finished payment frees its reservation; another payer's funds are its own.
      const first = results.find((result) => result.claimed);
      assert.ok(first?.claimed);
      await payments.markFailed(first.payment.id, "backend failed");
      assert.equal(
        (await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 350n)).claimed,
        true,
      );
      assert.equal(
        (await payments.claimWithinFunds(claimInput({ payer: payerAddress(8), maxAtomic: 350n }), 350n))
          .claimed,
        true,
      );
      const replay = claimInput({ payer: payerAddress(9), maxAtomic: 1n });
      await payments.claimWithinFunds(replay, 10n);
      const again = await payments.claimWithinFunds(replay, 10n);
      assert.ok(!again.claimed && again.existing !== undefined, "a replay still finds its row");
    });

    test("claims within funds: a payment carrying an EIP-2612 permit is in flight alone among its payer's", async () => {
      const payer = payerAddress(11);
      const withPermit = () => {
        const input = claimInput({ payer, maxAtomic: 100n });
        return {
          ...input,
          paymentPayload: {
            ...(input.paymentPayload as object),
            extensions: { eip2612GasSponsoring: { info: { amount: "100", nonce: "0", signature: "0x01" } } },
          },
        };
      };
      // The 402's declaration of the extension, echoed by a client (no signed permit), is no permit.
      const echoed = claimInput({ payer, maxAtomic: 100n });
      const declared = await payments.claimWithinFunds(
        {
          ...echoed,
          paymentPayload: {
            ...(echoed.paymentPayload as object),
            extensions: { eip2612GasSponsoring: { info: { description: "accepts permits", version: "1" } } },
          },
        },
        10_000n,
      );
      assert.equal(declared.claimed, true);
      const beside = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 10_000n);
      assert.equal(beside.claimed, true, "a plain payment joins one that only echoes the declaration");
      for (const done of [declared, beside])
        if (done.claimed) await payments.markFailed(done.payment.id, "done");
      const permitted = await payments.claimWithinFunds(withPermit(), 10_000n, { serving: true });
      assert.equal(permitted.claimed, true);
      // Neither a plain payment nor another permit joins it, whatever the funds.
      for (const input of [claimInput({ payer, maxAtomic: 100n }), withPermit()]) {
        const refused = await payments.claimWithinFunds(input, 10_000n);
        assert.ok(!refused.claimed && refused.existing === undefined);
        assert.equal(refused.permitInFlight, true);
      }
      assert.ok(permitted.claimed);
      await payments.markFailed(permitted.payment.id, "backend failed");
      const plain = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 10_000n);
      assert.equal(plain.claimed, true);
      // A permit does not join a plain payment in flight either.
      const late = await payments.claimWithinFunds(withPermit(), 10_000n);
      assert.ok(!late.claimed && late.existing === undefined && late.permitInFlight);
      // Funds alone are told as funds.
      const short = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 150n);
      assert.ok(!short.claimed && short.existing === undefined && !short.permitInFlight);
    });

    test("claims within funds: a charge settled after the funds were read is counted, as the read may not show it", async () => {
      const payer = payerAddress(0x5e7);
      const readAtMs = Date.now() - 1_000;
      const first = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 1_000n }), 1_000n, {
        serving: true,
      });
      assert.ok(first.claimed);
      await payments.recordUsage(first.payment.id, usage, 400n);
      await payments.markSettling(first.payment.id);
      await payments.markSettled(first.payment.id, {
        transaction: transactionHash(0x5e7),
        chargeAtomic: 400n,
      });
      // The payer's 1,000 was read before the 400 settled: 600 are left, not the 1,000 read.
      const stale = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 1_000n }), 1_000n, {
        settledSinceMs: readAtMs,
      });
      assert.ok(!stale.claimed && stale.existing === undefined);
      assert.equal(stale.settledSinceAtomic, 400n);
      assert.equal(stale.reservedAtomic, 400n);
      assert.ok(stale.checkedAtMs >= readAtMs);
      // Funds read after the refusal show the settlement: only what settles after it is counted.
      const fresh = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 600n }), 600n, {
        settledSinceMs: stale.checkedAtMs,
      });
      assert.equal(fresh.claimed, true);
    });

    test("claims within funds: an allowance read before a payment carrying an EIP-2612 permit settled is read again, as that permit set it anew", async () => {
      const payer = payerAddress(0x2612);
      const readAtMs = Date.now() - 1_000;
      const input = claimInput({ payer, maxAtomic: 100n });
      const permitted = await payments.claimWithinFunds(
        {
          ...input,
          paymentPayload: {
            ...(input.paymentPayload as object),
            extensions: { eip2612GasSponsoring: { info: { amount: "100", nonce: "0", signature: "0x01" } } },
          },
        },
        100n,
        { serving: true },
      );
      assert.ok(permitted.claimed);
      await payments.recordUsage(permitted.payment.id, usage, 90n);
      await payments.markSettling(permitted.payment.id);
      await payments.markSettled(permitted.payment.id, {
        transaction: transactionHash(0x2612),
        chargeAtomic: 90n,
      });
      // The 10,000 read before the permit landed is now 10: whatever the read, it is read again.
      const stale = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 500n }), 10_000n, {
        settledSinceMs: readAtMs,
        allowanceRead: true,
      });
      assert.ok(!stale.claimed && stale.existing === undefined && !stale.permitInFlight);
      assert.equal(stale.settledSinceAtomic, 90n);
      // Funds that are not capped by an allowance count its charge only.
      const balance = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 500n }), 10_000n, {
        settledSinceMs: readAtMs,
      });
      assert.equal(balance.claimed, true);
      if (balance.claimed) await payments.markFailed(balance.payment.id, "done");
      // An allowance read after the refusal shows the permit: only what settles after it is counted.
      const fresh = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 10n }), 10n, {
        settledSinceMs: stale.checkedAtMs,
        allowanceRead: true,
      });
      assert.equal(fresh.claimed, true);
    });

    /** Books a debt of 300 for `payer`, failed on the seller's side, whose Permit2 deadline is `deadline`. */
    const owing = async (payer: string, deadline: string) => {
      const input = claimInput({ payer, maxAtomic: 300n });
      const payload = input.paymentPayload as { payload: { permit2Authorization: object } };
      const claimed = await payments.claimWithinFunds(
        {
          ...input,
          paymentPayload: {
            ...payload,
            payload: {
              ...payload.payload,
              permit2Authorization: {
                ...payload.payload.permit2Authorization,
                deadline,
              },
            },
          },
        },
        10_000n,
        { serving: true },
      );
      assert.ok(claimed.claimed);
      await payments.recordUsage(claimed.payment.id, usage, 200n);
      await payments.markSettling(claimed.payment.id);
      // The seller's side failed it: its payer is not refused, and recovery settles it again.
      await payments.markDebt(claimed.payment.id, "tollgate_chain_unavailable", { blocksPayer: false });
    };

    test("claims within funds: a debt whose authorization may still be settled stays reserved, one past its deadline does not", async () => {
      const payer = payerAddress(0xdeb7);
      const nowSeconds = Math.floor(Date.now() / 1000);
      await owing(payer, String(nowSeconds - 60));
      assert.equal(
        (await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 100n)).claimed,
        true,
        "a lapsed debt can no longer be settled: nothing of it is reserved",
      );
      await owing(payer, String(nowSeconds + 3_600));
      const short = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 399n);
      assert.ok(!short.claimed && short.existing === undefined);
      assert.equal(short.reservedAtomic, 100n + 300n, "the claim before, and the debt's maximum");
      assert.equal(
        (await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 500n)).claimed,
        true,
      );
    });

    test("claims within funds: a debt whose authorization never expires (deadline the uint256 maximum) stays reserved", async () => {
      const payer = payerAddress(0xdeb8);
      await owing(payer, (2n ** 256n - 1n).toString());
      const short = await payments.claimWithinFunds(claimInput({ payer, maxAtomic: 100n }), 399n);
      assert.ok(!short.claimed && short.existing === undefined);
      assert.equal(short.reservedAtomic, 300n, "the debt's maximum");
    });

    test("claims within funds: an upto payment signed for more than its maximum needs all it signed for when it settles last", async () => {
      const payer = payerAddress(0x516);
      const signedFor = (maxAtomic: bigint, signedAtomic: bigint, scheme = "upto") => {
        const input = claimInput({ payer, maxAtomic });
        return {
          ...input,
          scheme,
          paymentRequirements: {
            ...(input.paymentRequirements as object),
            scheme,
            amount: signedAtomic.toString(),
          },
        };
      };
      const first = await payments.claimWithinFunds(signedFor(100n, 150n), 240n);
      assert.equal(first.claimed, true);
      // Settled after the first took its 100, the second must still find its 150: 250 in all.
      const second = await payments.claimWithinFunds(signedFor(100n, 150n), 240n);
      assert.ok(!second.claimed && second.existing === undefined);
      assert.equal(second.reservedAtomic, 150n, "the first's maximum, and the larger margin");
      assert.equal((await payments.claimWithinFunds(signedFor(100n, 150n), 250n)).claimed, true);
      // An exact payment is settled at its maximum, whatever its requirements say.
      assert.equal((await payments.claimWithinFunds(signedFor(10n, 1_000n, "exact"), 260n)).claimed, true);
    });

    test("claims an authorization once and refuses a sequential replay", async () => {
      const input = claimInput();
      const first = await payments.claim(input);
      assert.equal(first.claimed, true);
      const replay = await payments.claim(input);
      assert.equal(replay.claimed, false);
      assert.ok(first.claimed && !replay.claimed);
      assert.equal(replay.existing.id, first.payment.id);
      assert.equal(replay.existing.status, "claimed");
    });

    test("lets exactly one of 20 concurrent claims of one authorization win", async () => {
      const input = claimInput();
      const results = await Promise.all(Array.from({ length: 20 }, () => payments.claim(input)));
      const winners = results.filter((result) => result.claimed);
      assert.equal(winners.length, 1);
      const ids = new Set(results.map((result) => (result.claimed ? result.payment.id : result.existing.id)));
      assert.equal(ids.size, 1);
      const [row] = await harness.sql.query("SELECT count(*)::int AS n FROM payments");
      assert.equal(row?.n, 1);
    });

    test("treats a payer's letter case and a nonce's hex or decimal spelling as one key", async () => {
      const nonce = 2n ** 255n + 7n;
      const first = await payments.claim(
        claimInput({ payer: payerAddress(0xabc).toUpperCase().replace("0X", "0x"), nonce }),
      );
      assert.ok(first.claimed);
      assert.equal(first.payment.payer, payerAddress(0xabc));
      assert.equal(first.payment.nonce, nonce.toString());
      const replay = await payments.claim(
        claimInput({ payer: payerAddress(0xabc), nonce: `0x${nonce.toString(16)}` }),
      );
      assert.equal(replay.claimed, false);
      const other = await payments.claim(
        claimInput({ payer: payerAddress(0xabc), nonce, network: "eip155:84532" }),
      );
      assert.equal(other.claimed, true, "the same nonce on another network is another authorization");
    });

    test("refuses a malformed payer, nonce or maximum before touching the table", async () => {
      await assert.rejects(payments.claim(claimInput({ payer: "0x1234" })), (error) =>
        isTollgateError(error, "TOLLGATE_LEDGER_FAILED"),
      );
      await assert.rejects(payments.claim(claimInput({ nonce: "-1" })), /nonce/);
      await assert.rejects(payments.claim(claimInput({ nonce: 2n ** 256n })), /nonce/);
      await assert.rejects(payments.claim(claimInput({ maxAtomic: 5 as unknown as bigint })), /maxAtomic/);
      assert.deepEqual(await payments.recent(), []);
    });

    test("records usage, charge and transaction along claimed → serving → metered → settling → settled", async () => {
      const claim = await payments.claim(claimInput({ maxAtomic: 50_000n }));
      assert.ok(claim.claimed);
      const id = claim.payment.id;
      assert.equal((await payments.markServing(id)).status, "serving");
      const metered = await payments.recordUsage(id, usage, 31_337n);
      assert.equal(metered.status, "metered");
      assert.equal(metered.promptTokens, 120);
      assert.equal(metered.completionTokens, 80);
      assert.equal(metered.chargeAtomic, 31_337n);
      assert.equal((await payments.markSettling(id)).status, "settling");
      const settled = await payments.markSettled(id, {
        transaction: transactionHash(1),
        chargeAtomic: 31_337n,
      });
      assert.equal(settled.status, "settled");
      assert.equal(settled.transaction, transactionHash(1));
      assert.equal(settled.chargeAtomic, 31_337n);
      assert.equal(settled.maxAtomic, 50_000n);
      assert.ok(settled.settledAt instanceof Date);
      assert.ok(settled.updatedAt >= settled.createdAt);
      assert.deepEqual(await payments.get(id), settled);
    });

    test("settles a zero charge as zero, with no transaction", async () => {
      const payment = await paymentAt(payments, "settling");
      const zero = await payments.markSettled(payment.id, { transaction: "", chargeAtomic: 0n });
      assert.equal(zero.status, "zero");
      assert.equal(zero.transaction, null);
      assert.equal(zero.chargeAtomic, 0n);
    });

    test("marks a payment failed before output, keeping the reason and charging nothing", async () => {
      const claimed = await paymentAt(payments, "claimed");
      const failed = await payments.markFailed(claimed.id, "facilitator /verify unreachable");
      assert.equal(failed.status, "failed");
      assert.equal(failed.error, "facilitator /verify unreachable");
      assert.equal(failed.chargeAtomic, null);
      const serving = await paymentAt(payments, "serving");
      assert.equal(
        (await payments.markFailed(serving.id, "backend 500 before first token")).status,
        "failed",
      );
    });

    test("finds open debts by network and payer, and forgets them once paid", async () => {
      const debtor = payerAddress(0xdeb);
      const other = payerAddress(0x0c0);
      const claim = await payments.claim(claimInput({ payer: debtor, maxAtomic: 9_000n }));
      assert.ok(claim.claimed);
      const id = claim.payment.id;
      await payments.markServing(id);
      await payments.recordUsage(id, usage, 7_000n);
      await payments.markSettling(id);
      await paymentAt(payments, "settled");
      await paymentAt(payments, "settling");
      assert.equal(await payments.hasOpenDebt("eip155:31337", debtor), false);

      const debt = await payments.markDebt(id, "settle reverted: insufficient balance");
      assert.equal(debt.status, "debt");
      assert.equal(debt.error, "settle reverted: insufficient balance");
      assert.equal(await payments.hasOpenDebt("eip155:31337", debtor), true);
      assert.equal(
        await payments.hasOpenDebt("eip155:31337", debtor.toUpperCase().replace("0X", "0x")),
        true,
      );
      assert.equal(await payments.hasOpenDebt("eip155:84532", debtor), false);
      assert.equal(await payments.hasOpenDebt("eip155:31337", other), false);
      assert.deepEqual(
        (await payments.openDebts()).map((p) => p.id),
        [id],
      );
      assert.deepEqual(
        (await payments.openDebts(debtor)).map((p) => [p.id, p.chargeAtomic]),
        [[id, 7_000n]],
      );
      assert.deepEqual(await payments.openDebts(other), []);

      const paid = await payments.resolveDebt(id, transactionHash(9));
      assert.equal(paid.status, "settled");
      assert.equal(paid.transaction, transactionHash(9));
      assert.equal(paid.chargeAtomic, 7_000n);
      assert.ok(paid.settledAt instanceof Date);
      assert.equal(await payments.hasOpenDebt("eip155:31337", debtor), false);
      assert.deepEqual(await payments.openDebts(), []);
      await assert.rejects(payments.resolveDebt(id, transactionHash(10)), PaymentTransitionError);
    });

    test("a debt its payer did not cause stays owed and listed, and does not refuse the payer", async () => {
      const payer = payerAddress(0x1a5);
      const claim = await payments.claim(claimInput({ payer, maxAtomic: 9_000n }));
      assert.ok(claim.claimed);
      const id = claim.payment.id;
      await payments.markServing(id);
      await payments.recordUsage(id, usage, 6_000n);
      await payments.markSettling(id);
      const debt = await payments.markDebt(id, "authorization lapsed", { blocksPayer: false });
      assert.equal(debt.status, "debt");
      assert.equal(debt.chargeAtomic, 6_000n);
      assert.equal(await payments.hasOpenDebt("eip155:31337", payer), false);
      assert.deepEqual(await payments.admission(claimInput({ payer, nonce: 77n })), {
        inDebt: false,
        existing: undefined,
      });
      assert.notEqual(await payments.allocateUnlessInDebt({ network: "eip155:31337", payer }), undefined);
      assert.deepEqual(
        (await payments.openDebts(payer)).map((p) => p.id),
        [id],
      );
      // A debt it caused, beside it, refuses it.
      const second = await payments.claim(claimInput({ payer, nonce: 78n, maxAtomic: 9_000n }));
      assert.ok(second.claimed);
      await payments.markServing(second.payment.id);
      await payments.recordUsage(second.payment.id, usage, 5_000n);
      await payments.markSettling(second.payment.id);
      await payments.markDebt(second.payment.id, "settle reverted: insufficient balance");
      assert.equal(await payments.hasOpenDebt("eip155:31337", payer), true);
      assert.equal(await payments.allocateUnlessInDebt({ network: "eip155:31337", payer }), undefined);
      await payments.resolveDebt(second.payment.id, transactionHash(11));
      assert.equal(await payments.hasOpenDebt("eip155:31337", payer), false);
    });

    test("answers admission — debt on this network, and the row already holding the authorization — at once", async () => {
      const debtor = payerAddress(0xad1);
      const fresh = claimInput({ payer: debtor, nonce: 41n });
      assert.deepEqual(await payments.admission(fresh), { inDebt: false, existing: undefined });

      const claim = await payments.claim(claimInput({ payer: debtor, nonce: 42n }), { serving: true });
      assert.ok(claim.claimed);
      assert.equal(claim.payment.status, "serving", "claimed straight into serving");
      const replay = await payments.claim(claimInput({ payer: debtor, nonce: 42n }), { serving: true });
      assert.equal(replay.claimed, false, "a replay into serving is still refused");
      assert.deepEqual(await payments.admission(claimInput({ payer: debtor, nonce: "0x2a" })), {
        inDebt: false,
        existing: { id: claim.payment.id, status: "serving" },
      });

      await payments.recordUsage(claim.payment.id, usage, 500n);
      await payments.markSettling(claim.payment.id);
      await payments.markDebt(claim.payment.id, "settle reverted");
      assert.deepEqual(await payments.admission(fresh), { inDebt: true, existing: undefined });
      assert.deepEqual(
        await payments.admission({ ...fresh, payer: debtor.toUpperCase().replace("0X", "0x") }),
        { inDebt: true, existing: undefined },
      );
      assert.deepEqual(await payments.admission({ ...fresh, network: "eip155:84532" }), {
        inDebt: false,
        existing: undefined,
      });
      assert.deepEqual(await payments.admission(claimInput({ payer: payerAddress(0xad2), nonce: 41n })), {
        inDebt: false,
        existing: undefined,
      });
    });

    test("allocates an id unless the payer owes on the network; a row claimed with it keeps it", async () => {
      const debtor = payerAddress(0xad3);
      const id = await payments.allocateUnlessInDebt({ network: "eip155:31337", payer: debtor });
      assert.ok(id !== undefined && id > 0);
      const first = await payments.claim(claimInput({ payer: debtor, nonce: 51n }), { serving: true, id });
      assert.ok(first.claimed);
      assert.equal(first.payment.id, id);
      assert.equal(first.payment.status, "serving");
      // Ids allocated later are new, and a row claimed without one does not take an allocated one.
      const next = await payments.allocateUnlessInDebt({ network: "eip155:31337", payer: debtor });
      assert.ok(next !== undefined && next > id);
      const plain = await payments.claim(claimInput({ payer: debtor, nonce: 53n }));
      assert.ok(plain.claimed);
      assert.notEqual(plain.payment.id, next);
      const replay = await payments.claim(claimInput({ payer: debtor, nonce: 51n }), { id: next });
      assert.equal(replay.claimed, false);
      assert.equal(replay.existing?.id, id);

      await payments.recordUsage(first.payment.id, usage, 500n);
      await payments.markSettling(first.payment.id);
      await payments.markDebt(first.payment.id, "settle reverted");
      assert.equal(
        await payments.allocateUnlessInDebt({ network: "eip155:31337", payer: debtor }),
        undefined,
      );
      assert.equal(
        await payments.allocateUnlessInDebt({
          network: "eip155:31337",
          payer: debtor.toUpperCase().replace("0X", "0x"),
        }),
        undefined,
        "the payer is the same whatever its case",
      );
      assert.ok(
        (await payments.allocateUnlessInDebt({ network: "eip155:84532", payer: debtor })) !== undefined,
        "a debt on another network does not refuse this one",
      );
      await payments.resolveDebt(first.payment.id, transactionHash(11));
      assert.ok(
        (await payments.allocateUnlessInDebt({ network: "eip155:31337", payer: debtor })) !== undefined,
        "allocated once the debt is paid",
      );
      // A debt settled by recovery (its transfer found on chain) frees the payer the same way.
      const again = await payments.claim(claimInput({ payer: debtor, nonce: 57n }), { serving: true });
      assert.ok(again.claimed);
      await payments.recordUsage(again.payment.id, usage, 300n);
      await payments.markSettling(again.payment.id);
      await payments.markDebt(again.payment.id, "settle timed out");
      assert.equal(
        await payments.allocateUnlessInDebt({ network: "eip155:31337", payer: debtor }),
        undefined,
      );
      await payments.markSettled(again.payment.id, { transaction: transactionHash(12), chargeAtomic: 300n });
      assert.ok(
        (await payments.allocateUnlessInDebt({ network: "eip155:31337", payer: debtor })) !== undefined,
        "allocated once recovery settled the debt",
      );
    });

    test("lists claimed, serving, metered and settling rows for recovery, with what settling needs", async () => {
      const byStatus = new Map<PaymentStatus, number>();
      for (const status of [
        "settling",
        "settled",
        "claimed",
        "zero",
        "metered",
        "debt",
        "serving",
        "failed",
      ] as const) {
        byStatus.set(status, (await paymentAt(payments, status)).id);
      }
      const pending = await payments.pendingForRecovery();
      assert.deepEqual(
        pending.map((p) => p.status),
        ["settling", "claimed", "metered", "serving"],
      );
      const settling = pending[0];
      assert.ok(settling !== undefined);
      const original = await payments.get(byStatus.get("settling") ?? 0);
      assert.deepEqual(settling, original);
      const expected = claimInput({
        nonce: BigInt(settling.nonce),
        payer: settling.payer,
        maxAtomic: settling.maxAtomic,
      });
      assert.deepEqual(settling.paymentPayload, expected.paymentPayload);
      assert.deepEqual(settling.paymentRequirements, expected.paymentRequirements);
      assert.equal(settling.chargeAtomic, 1_234n);

      assert.deepEqual(
        await payments.pendingForRecovery({ updatedBefore: new Date(Date.now() - 60_000) }),
        [],
      );
      const later = await payments.pendingForRecovery({ updatedBefore: new Date(Date.now() + 60_000) });
      assert.equal(later.length, 4);
    });

    test("touch keeps a live claimed or serving row out of a recovery's grace window, and nothing else", async () => {
      const serving = await paymentAt(payments, "serving");
      const settled = await paymentAt(payments, "settled");
      await harness.sql.query("UPDATE payments SET updated_at = now() - interval '10 minutes'");
      const cutoff = new Date(Date.now() - 60_000);
      assert.deepEqual(
        (await payments.pendingForRecovery({ updatedBefore: cutoff })).map((p) => p.id),
        [serving.id],
      );
      assert.equal(await payments.touch(serving.id), true);
      assert.deepEqual(await payments.pendingForRecovery({ updatedBefore: cutoff }), []);
      assert.equal(await payments.touch(settled.id), false, "a final row is not touched");
    });

    test("a recovery's grace is measured by the database's clock, the one that wrote updated_at", async () => {
      const serving = await paymentAt(payments, "serving");
      await harness.sql.query("UPDATE payments SET updated_at = now() - interval '45 seconds'");
      const ids = async (untouchedForMs: number) =>
        (await payments.pendingForRecovery({ untouchedForMs })).map((p) => p.id);
      assert.deepEqual(await ids(30_000), [serving.id], "untouched for 45 s by the database's clock");
      assert.deepEqual(await ids(60_000), []);
      assert.equal(await payments.touch(serving.id), true);
      assert.deepEqual(await ids(30_000), [], "a touch makes it live again");
    });

    test("lists rows of one status oldest first, a page at a time", async () => {
      const settled: number[] = [];
      for (let i = 0; i < 5; i++) {
        settled.push((await paymentAt(payments, "settled", i)).id);
        await paymentAt(payments, "failed");
      }
      const first = await payments.listByStatus("settled", { limit: 3 });
      assert.deepEqual(
        first.map((p) => p.id),
        settled.slice(0, 3),
      );
      const rest = await payments.listByStatus("settled", { afterId: first.at(-1)?.id });
      assert.deepEqual(
        rest.map((p) => p.id),
        settled.slice(3),
      );
      assert.equal((await payments.listByStatus("failed")).length, 5);
      await assert.rejects(payments.listByStatus("nope" as PaymentStatus), (error) => isTollgateError(error));
    });

    test("lists recent payments newest first, bounded by the limit", async () => {
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) ids.push((await paymentAt(payments, "claimed")).id);
      assert.deepEqual(
        (await payments.recent({ limit: 3 })).map((p) => p.id),
        ids.slice(2).reverse(),
      );
      assert.equal((await payments.recent()).length, 5);
      assert.equal((await payments.recent({ limit: 0 })).length, 1);
    });

    test("lists recent payments by when they were written, not by their id: an id is allocated before its row", async () => {
      const earlier = await payments.allocateUnlessInDebt(claimInput());
      const later = await payments.allocateUnlessInDebt(claimInput());
      assert.ok(earlier !== undefined && later !== undefined && earlier < later);
      await payments.claim(claimInput(), { id: later });
      await payments.claim(claimInput(), { id: earlier });
      const last = await paymentAt(payments, "claimed");
      assert.deepEqual(
        (await payments.recent()).map((p) => p.id),
        [last.id, earlier, later],
      );
    });

    test("totals money per model exactly, far beyond 2^53", async () => {
      const huge = 2n ** 200n + 12_345_678_901_234_567n;
      const charges = [2n ** 60n + 1n, 2n ** 70n + 3n, 0n];
      let id = 0;
      const claimModel = async (model: string, maxAtomic: bigint) => {
        const claim = await payments.claim(claimInput({ model, maxAtomic }));
        assert.ok(claim.claimed);
        return claim.payment.id;
      };
      for (const charge of charges) {
        id = await claimModel("big-model", huge);
        await payments.markServing(id);
        await payments.recordUsage(id, usage, charge);
        await payments.markSettling(id);
        await payments.markSettled(id, {
          transaction: charge === 0n ? "" : transactionHash(Number(charge % 1000n)),
          chargeAtomic: charge,
        });
      }
      id = await claimModel("big-model", huge);
      await payments.markServing(id);
      await payments.recordUsage(id, usage, 2n ** 64n + 5n);
      await payments.markSettling(id);
      await payments.markDebt(id, "rpc down");
      await claimModel("big-model", huge);
      await claimModel("small-model", 10n);

      const totals = await payments.totals();
      assert.deepEqual(
        totals.map((t) => t.model),
        ["big-model", "small-model"],
      );
      const [big, small] = totals;
      assert.ok(big !== undefined && small !== undefined);
      assert.equal(big.count, 5);
      assert.equal(big.authorizedAtomic, huge * 5n);
      assert.equal(big.chargedAtomic, 2n ** 60n + 1n + 2n ** 70n + 3n);
      assert.equal(big.owedAtomic, 2n ** 64n + 5n);
      assert.deepEqual(big.byStatus, {
        claimed: 1,
        serving: 0,
        metered: 0,
        settling: 0,
        settled: 2,
        zero: 1,
        debt: 1,
        failed: 0,
      });
      assert.equal(small.count, 1);
      assert.equal(small.authorizedAtomic, 10n);
      assert.equal(small.chargedAtomic, 0n);
      assert.equal(small.byStatus.claimed, 1);
    });
  });
}
