import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createChannelLedger } from "./createChannelLedger.js";
import { createLedger } from "./createLedger.js";
import { createPgliteClient } from "./createPgliteClient.js";
import { createPostgresClient } from "./createPostgresClient.js";
import type { ClaimPaymentInput } from "./PaymentLedger.js";
import { channelRowWrite } from "./paymentRowWrites.js";
import type { SqlClient } from "./SqlClient.js";
import { testChannel as channel, testChannelId as idOf } from "./testkit/channelFixtures.js";

const tempDirs: string[] = [];
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

async function openAt(dataDir: string) {
  const sql = await createPgliteClient({ dataDir });
  const ledger = await createLedger(sql);
  return { sql, ledger };
}

async function freshDir() {
  const parent = await mkdtemp(join(tmpdir(), "tollgate-channels-"));
  tempDirs.push(parent);
  return join(parent, "ledger");
}

const storedRow = async (sql: SqlClient, n: number) =>
  (
    await sql.query<{ charged: string; pending_id: string | null; settled: string }>(
      "SELECT charged_atomic::text AS charged, pending_id, settled_atomic::text AS settled FROM channels WHERE channel_id = $1",
      [idOf(n)],
    )
  )[0];

/** Takes the channel for one request, as a voucher's reservation does; false when it is taken. */
const reserve = (ledger: Awaited<ReturnType<typeof openAt>>["ledger"], n: number, id: string) =>
  ledger.channels.update(idOf(n), (current) => {
    if (!current) throw new Error("unknown channel");
    if (current.pending) return { result: false };
    return {
      next: {
        ...current,
        lastRequestAt: Date.now(),
        pending: { id, maxAtomic: 10n, expiresAt: Date.now() + 60_000 },
      },
      result: true,
    };
  });

type Ledger = Awaited<ReturnType<typeof createLedger>>;

/** Every debt check a request makes, for channel `n`'s payer on its network: all agree, or this throws. */
async function owes(
  ledger: Ledger,
  payer = channel(0).payer,
  network = channel(0).network,
): Promise<boolean> {
  const allocated = await ledger.payments.allocateUnlessInDebt({ network, payer });
  const admission = await ledger.payments.admission({ network, payer, nonce: 1n });
  const open = await ledger.payments.hasOpenDebt(network, payer);
  assert.equal(admission.inDebt, allocated === undefined, "admission and allocation agree");
  assert.equal(open, allocated === undefined, "hasOpenDebt and allocation agree");
  return open;
}

/** Channel `n`'s balance and claimed total, as a chain read or a claim books them. */
const book = (ledger: Ledger, n: number, onchain: { balanceAtomic?: bigint; totalClaimedAtomic?: bigint }) =>
  ledger.channels.update(idOf(n), (current) => ({ next: { ...current!, ...onchain }, result: undefined }));

/** Charges channel `n` 600 of 1,000 deposited, then finds its escrow holds 500, and claims it: its payer owes. */
async function chargeThenFindShort(ledger: Ledger, n: number): Promise<void> {
  await ledger.channels.update(idOf(n), () => ({
    next: channel(n, { chargedAtomic: 600n, signedMaxAtomic: 600n }),
    result: undefined,
  }));
  assert.equal(await owes(ledger), false, "charged within its balance: owes nothing");
  await book(ledger, n, { balanceAtomic: 500n });
  assert.equal(await owes(ledger), false, "a balance read alone (an RPC may lag) is no debt");
  await book(ledger, n, { totalClaimedAtomic: 500n });
  assert.equal(await owes(ledger), true, "short of its charges, all its escrow claimed: its payer owes");
  assert.equal(
    await owes(ledger, "0x00000000000000000000000000000000000000ab"),
    false,
    "another payer owes nothing",
  );
  assert.equal(await owes(ledger, undefined, "eip155:8453"), false, "on another network it owes nothing");
}

/** The payer deposits into the short channel: once the balance covers the charges, it owes nothing. */
async function depositOwed(ledger: Ledger, n: number): Promise<void> {
  await book(ledger, n, { balanceAtomic: 599n });
  assert.equal(
    await owes(ledger),
    false,
    "a deposit: nothing owed until a claim finds the channel short again",
  );
  await book(ledger, n, { totalClaimedAtomic: 599n });
  assert.equal(await owes(ledger), true, "still 1 short");
  await book(ledger, n, { balanceAtomic: 1_600n });
  assert.equal(await owes(ledger), false, "the balance covers the charges again");
}

describe("channels in a database one process holds (PGlite)", () => {
  test("one update at a time per channel: of 20 concurrent reservations exactly one wins, and it writes nothing", async () => {
    const { sql, ledger } = await openAt(await freshDir());
    await ledger.channels.update(idOf(1), () => ({ next: channel(1), result: undefined }));
    const won = await Promise.all(Array.from({ length: 20 }, (_, i) => reserve(ledger, 1, `r${i}`)));
    assert.equal(won.filter(Boolean).length, 1);
    assert.ok((await ledger.channels.get(idOf(1)))?.pending, "the reservation is seen in this process");
    assert.equal((await storedRow(sql, 1))?.pending_id, null, "and never written");
    await ledger.close();
  });

  test("a charge is written with its payment statement or not at all; one that applies to nothing leaves the channel as it was", async () => {
    const { sql, ledger } = await openAt(await freshDir());
    await ledger.channels.update(idOf(2), () => ({ next: channel(2), result: undefined }));
    assert.ok(await reserve(ledger, 2, "a"));
    const charge = (alsoWrite: { text: string; params: unknown[] }) =>
      ledger.channels.update(idOf(2), (current) => ({
        next: { ...current!, chargedAtomic: 7n, signedMaxAtomic: 10n, pending: undefined },
        result: undefined,
        alsoWrite,
      }));
    await assert.rejects(
      charge({ text: "UPDATE payments SET updated_at = now() WHERE id = $1 RETURNING id", params: [424242] }),
      /applied to nothing; nothing is written/,
    );
    assert.equal((await storedRow(sql, 2))?.charged, "0", "nothing on disk");
    const kept = await ledger.channels.get(idOf(2));
    assert.equal(kept?.chargedAtomic, 0n, "nor in memory");
    assert.equal(kept?.pending?.id, "a", "still reserved");
    await assert.rejects(
      charge({ text: "SELECT $1::text::int AS boom", params: ["seven"] }),
      /invalid input syntax/,
    );
    assert.equal((await storedRow(sql, 2))?.charged, "0", "a failing statement writes nothing either");
    await charge({ text: "SELECT $1::int AS one", params: [1] });
    assert.equal((await storedRow(sql, 2))?.charged, "7");
    assert.equal((await ledger.channels.get(idOf(2)))?.chargedAtomic, 7n);
    // A channel gone from the table fails the whole statement, with words that say so.
    await sql.query("DELETE FROM channels WHERE channel_id = $1", [idOf(2).toLowerCase()]);
    await assert.rejects(
      ledger.channels.update(idOf(2), (current) => ({
        next: { ...current!, chargedAtomic: 9n, signedMaxAtomic: 10n },
        result: undefined,
        alsoWrite: { text: "SELECT $1::int AS one", params: [1] },
      })),
      /is not stored; its update is not written/,
    );
    await ledger.close();
  });

  test("a JSON voucher's row and charge written by the stored function equal the same written as a statement; a held authorization, a charge above the maximum and a channel not stored write nothing", async () => {
    const { sql, ledger } = await openAt(await freshDir());
    const claimOf = (nonce: string): ClaimPaymentInput => ({
      network: "eip155:31337",
      payer: "0x00000000000000000000000000000000000000aa",
      nonce,
      scheme: "batch-settlement",
      model: "m",
      route: "chat",
      asset: "0x00000000000000000000000000000000000000cc",
      payTo: "0x00000000000000000000000000000000000000bb",
      maxAtomic: 10n,
      paymentPayload: { voucher: { maxClaimableAmount: "10" } },
      paymentRequirements: { amount: "10" },
      requestId: `req-${nonce}`,
    });
    const usage = { promptTokens: 3, completionTokens: 4, units: { input_tokens: 3, output_tokens: 4 } };
    const charge = (n: number, paymentId: number, nonce: string, chargeAtomic: bigint, asStatement = false) =>
      ledger.channels.update(idOf(n), (current) => {
        const alsoWrite = channelRowWrite(paymentId, { usage, chargeAtomic }, claimOf(nonce));
        return {
          next: {
            ...current!,
            chargedAtomic: current!.chargedAtomic + chargeAtomic,
            signedMaxAtomic: current!.chargedAtomic + 10n,
            signature: `0x${"ab".repeat(65)}`,
            lastRequestAt: 1_700_000_000_000 + paymentId,
            pending: undefined,
          },
          result: undefined,
          alsoWrite: asStatement ? { text: alsoWrite.text, params: alsoWrite.params } : alsoWrite,
        };
      });
    const rowOf = async (id: number) =>
      (
        await sql.query(
          `SELECT network, payer, nonce, scheme, model, route, asset, pay_to, max_atomic::text, status,
                  charge_atomic::text, prompt_tokens, completion_tokens, usage, error, payload, requirements,
                  request_id, settled_at IS NOT NULL AS settled FROM payments WHERE id = $1`,
          [id],
        )
      )[0];
    const channelOf = async (n: number) =>
      (
        await sql.query(
          `SELECT charged_atomic::text, signed_max_atomic::text, signature, last_request_at::text
             FROM channels WHERE channel_id = $1`,
          [idOf(n)],
        )
      )[0];
    for (const n of [30, 31])
      await ledger.channels.update(idOf(n), () => ({ next: channel(n), result: undefined }));
    // Which statements reach the database: the function is called for the one charge, not for the other.
    const sent: string[] = [];
    const query = sql.query.bind(sql);
    sql.query = ((text: string, params?: readonly unknown[]) => {
      sent.push(text);
      return query(text, params);
    }) as typeof sql.query;
    const byTheFunction = () => sent.some((text) => text.includes("tollgate_charge_voucher_row("));
    await charge(30, 1, "1", 7n);
    assert.ok(byTheFunction(), "written by the function");
    sent.length = 0;
    await charge(31, 2, "2", 7n, true);
    assert.ok(!byTheFunction(), "written as a statement");
    const [byFunction, byStatement] = [await rowOf(1), await rowOf(2)];
    assert.equal(byFunction?.status, "settled");
    assert.equal(byFunction?.charge_atomic, "7");
    assert.deepEqual(byFunction, { ...byStatement, nonce: "1", request_id: "req-1" });
    assert.deepEqual(await channelOf(30), {
      charged_atomic: "7",
      signed_max_atomic: "10",
      signature: `0x${"ab".repeat(65)}`,
      last_request_at: "1700000000001",
    });
    await charge(30, 3, "3", 0n);
    assert.equal((await rowOf(3))?.status, "zero", "a zero charge is a row too");

    // Nothing of an update whose row is not inserted is written, on disk or in memory.
    await assert.rejects(
      charge(30, 4, "1", 2n),
      /applied to nothing; nothing is written/,
      "held authorization",
    );
    await assert.rejects(
      charge(30, 5, "5", 11n),
      /applied to nothing; nothing is written/,
      "above the maximum",
    );
    assert.equal(await rowOf(4), undefined);
    assert.equal(await rowOf(5), undefined);
    assert.equal((await channelOf(30))?.charged_atomic, "7");
    assert.equal((await ledger.channels.get(idOf(30)))?.chargedAtomic, 7n);

    // A channel gone from the table fails the call, with words that say so, and its row is not kept.
    await sql.query("DELETE FROM channels WHERE channel_id = $1", [idOf(30)]);
    await assert.rejects(charge(30, 6, "6", 2n), /is not stored; its update is not written/);
    assert.equal(await rowOf(6), undefined);
    await ledger.close();
  });

  test("a settle recorded meanwhile is kept by the next update; a restart finds every channel free and its charges as written", async () => {
    const dataDir = await freshDir();
    const first = await openAt(dataDir);
    await first.ledger.channels.update(idOf(3), () => ({
      next: channel(3, { chargedAtomic: 40n, signedMaxAtomic: 50n }),
      result: undefined,
    }));
    await first.ledger.channels.markSettled([{ channelId: idOf(3), settledAtomic: 30n }]);
    assert.ok(await reserve(first.ledger, 3, "before-restart"));
    await first.ledger.channels.update(idOf(3), (current) => ({
      next: { ...current!, chargedAtomic: 45n, signedMaxAtomic: 50n, pending: undefined },
      result: undefined,
    }));
    assert.deepEqual(await storedRow(first.sql, 3), { charged: "45", pending_id: null, settled: "30" });
    assert.ok(await reserve(first.ledger, 3, "in-flight at the crash"));
    await first.ledger.close();

    const second = await openAt(dataDir);
    const [listed] = await second.ledger.channels.list();
    assert.equal(listed?.pending, undefined, "the request in flight ended with the process");
    assert.equal(listed?.chargedAtomic, 45n);
    assert.equal(listed?.settledAtomic, 30n);
    assert.ok(await reserve(second.ledger, 3, "after-restart"), "the channel takes a voucher at once");
    await second.ledger.close();
  });

  test("a channel whose escrow holds less than was charged on it makes its payer owe, on every debt check, until a deposit covers the charges; a restart reads it from the table", async () => {
    const dataDir = await freshDir();
    const first = await openAt(dataDir);
    await chargeThenFindShort(first.ledger, 30);
    await first.ledger.close();
    const second = await openAt(dataDir);
    assert.equal(await owes(second.ledger), true, "read from the table at the restart");
    await depositOwed(second.ledger, 30);
    await second.ledger.close();
  });

  test("beyond the channels it keeps, the least recently used free one is read again; a reserved one is never dropped", async () => {
    const sql = await createPgliteClient({ dataDir: await freshDir() });
    const { channels } = await createLedger(sql);
    const small = createChannelLedger(sql, { keptChannels: 2 });
    for (const n of [10, 11, 12, 13])
      await small.update(idOf(n), () => ({ next: channel(n), result: undefined }));
    const take = (n: number, id: string) =>
      small.update(idOf(n), (current) =>
        current?.pending
          ? { result: false }
          : {
              next: { ...current!, pending: { id, maxAtomic: 1n, expiresAt: Date.now() + 60_000 } },
              result: true,
            },
      );
    assert.ok(await take(10, "held"));
    for (const n of [11, 12, 13, 11, 12, 13]) await small.get(idOf(n));
    assert.equal(await take(10, "second"), false, "the reservation outlived the churn");
    assert.equal((await channels.list()).length, 4);
    await sql.close();
  });
});

// Tests may read the environment; the library never does.
const postgresUrl = process.env.TOLLGATE_TEST_DATABASE_URL;

describe("channels in a shared database (PostgreSQL)", {
  skip: postgresUrl ? false : "set TOLLGATE_TEST_DATABASE_URL",
}, () => {
  test("a channel whose escrow holds less than was charged on it makes its payer owe, on every debt check, until a deposit covers the charges", async () => {
    const schema = `tollgate_test_${process.pid}_${Date.now().toString(36)}_short`;
    const sql = await createPostgresClient({ connectionString: postgresUrl as string, schema });
    const ledger = await createLedger(sql);
    try {
      await chargeThenFindShort(ledger, 31);
      await depositOwed(ledger, 31);
    } finally {
      await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await ledger.close();
    }
  });

  test("replicas take turns at a round even on a server that ends idle transactions: the turn's transaction is exempt", async () => {
    const url = postgresUrl as string;
    const schema = `tollgate_test_${process.pid}_${Date.now().toString(36)}_turns`;
    const sqlA = await createPostgresClient({ connectionString: url, schema });
    const sqlB = await createPostgresClient({ connectionString: url, schema });
    // Replica A's server ends a transaction idle for 200 ms (as `idle_in_transaction_session_timeout`
    // configured for its role or database would).
    const strict: SqlClient = {
      ...sqlA,
      transaction: (fn) =>
        sqlA.transaction(async (tx) => {
          await tx.query("SET LOCAL idle_in_transaction_session_timeout = '200ms'");
          return fn(tx);
        }),
    };
    const ledger = await createLedger(sqlA);
    try {
      const replicaA = createChannelLedger(strict);
      const replicaB = createChannelLedger(sqlB);
      let aEndedAt = 0;
      let started = () => {};
      const aStarted = new Promise<void>((resolve) => {
        started = resolve;
      });
      // A's round waits 1 s on the chain (its claim being mined), its turn's transaction idle meanwhile.
      const roundA = replicaA.exclusively("claim:payTo", async () => {
        started();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        aEndedAt = Date.now();
      });
      await aStarted;
      const roundB = replicaB.exclusively("claim:payTo", async () => Date.now());
      const [, bStartedAt] = await Promise.all([roundA, roundB]);
      assert.ok(bStartedAt >= aEndedAt, `B's round began ${aEndedAt - bStartedAt} ms before A's ended`);
    } finally {
      await sqlA.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await ledger.close();
      await sqlB.close();
    }
  });

  test("a settle recorded while an update holds the channel is not written back over", async () => {
    const url = postgresUrl as string;
    const schema = `tollgate_test_${process.pid}_${Date.now().toString(36)}_channels`;
    const sql = await createPostgresClient({ connectionString: url, schema });
    const blocker = await createPostgresClient({ connectionString: url, schema });
    const ledger = await createLedger(sql);
    try {
      await ledger.channels.update(idOf(20), () => ({
        next: channel(20, { chargedAtomic: 30n, signedMaxAtomic: 30n, totalClaimedAtomic: 30n }),
        result: undefined,
      }));
      // Another connection holds the row, so the settle and the update queue behind it in that order.
      let letGo = () => {};
      const held = new Promise<void>((resolve) => {
        letGo = resolve;
      });
      let blockerPid = 0;
      let holding = () => {};
      const isHolding = new Promise<void>((resolve) => {
        holding = resolve;
      });
      const holder = blocker.transaction(async (tx) => {
        const [row] = await tx.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
        blockerPid = Number(row?.pid);
        await tx.query("SELECT 1 FROM channels WHERE channel_id = $1 FOR UPDATE", [idOf(20)]);
        holding();
        await held;
      });
      await isHolding;
      // Backends queued behind the held row, directly or behind one another.
      const waiting = async (count: number) => {
        for (;;) {
          const [row] = await blocker.query<{ n: string }>(
            `WITH RECURSIVE queued(pid) AS (
               SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))
               UNION SELECT a.pid FROM pg_stat_activity a JOIN queued q ON q.pid = ANY(pg_blocking_pids(a.pid)))
             SELECT count(*)::text AS n FROM queued`,
            [blockerPid],
          );
          if (Number(row?.n) >= count) return;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      };
      const settled = ledger.channels.markSettled([{ channelId: idOf(20), settledAtomic: 30n }]);
      await waiting(1);
      const charged = ledger.channels.update(idOf(20), (current) => ({
        next: { ...current!, chargedAtomic: 40n, signedMaxAtomic: 40n },
        result: undefined,
      }));
      await waiting(2);
      letGo();
      await Promise.all([holder, settled, charged]);

      const after = await ledger.channels.get(idOf(20));
      assert.equal(after?.chargedAtomic, 40n);
      assert.equal(after?.settledAtomic, 30n, "the settle is kept");
    } finally {
      await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await ledger.close();
      await blocker.close();
    }
  });
});
