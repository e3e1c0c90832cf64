// A PGlite ledger on disk answers a JSON voucher's charge once it is journaled, and writes it right after:
// a process killed in between, or a database that fails the write, loses nothing and charges nothing twice.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { silentLogger } from "../errors/index.js";
import { createChannelLedger } from "./createChannelLedger.js";
import { chargeJournalPath, openChargeJournal } from "./createChargeJournal.js";
import { createLedger } from "./createLedger.js";
import { createPgliteClient } from "./createPgliteClient.js";
import { openLedger } from "./openLedger.js";
import { channelRowWrite } from "./paymentRowWrites.js";
import type { SqlClient } from "./SqlClient.js";
import {
  journalTestChannel,
  journalTestCharge,
  testChannel,
  testChannelId,
} from "./testkit/channelFixtures.js";

const tempDirs: string[] = [];
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

async function freshDir() {
  const parent = await mkdtemp(join(tmpdir(), "tollgate-journal-"));
  tempDirs.push(parent);
  return join(parent, "ledger");
}

const channelId = journalTestChannel().channelId;

async function stored(sql: Pick<SqlClient, "query">) {
  const rows = await sql.query<{ id: string; status: string; charge: string }>(
    "SELECT id::text, status, charge_atomic::text AS charge FROM payments ORDER BY id",
  );
  const [channel] = await sql.query<{ charged: string; signed: string }>(
    "SELECT charged_atomic::text AS charged, signed_max_atomic::text AS signed FROM channels WHERE channel_id = $1",
    [channelId],
  );
  return { rows, channel };
}

async function storedAt(dataDir: string) {
  const sql = await createPgliteClient({ dataDir });
  try {
    return await stored(sql);
  } finally {
    await sql.close();
  }
}

/** A PGlite client on `dataDir` whose charge writes on the journal's test channel fail with a full disk while `failCharges(true)`. */
async function failableLedgerSql(dataDir: string) {
  const pglite = await createPgliteClient({ dataDir });
  let failing = false;
  const sql: SqlClient = {
    ...pglite,
    query: (text, params) =>
      failing && text.includes("tollgate_charge_voucher_row(") && params?.includes(channelId)
        ? Promise.reject(new Error("No space left on device"))
        : pglite.query(text, params),
  };
  const failCharges = (on: boolean) => {
    failing = on;
  };
  return { pglite, sql, failCharges };
}

describe("the charge journal of a PGlite ledger on disk", () => {
  test("a process SIGKILLed the moment a JSON voucher's charge returned loses nothing: the next opening writes the charge from the journal, once", async () => {
    const dataDir = await freshDir();
    const child = spawn(
      process.execPath,
      ["--import", "tsx", fileURLToPath(new URL("./testkit/chargeThenKill.ts", import.meta.url)), dataDir],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
    const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.on("exit", (exitCode, exitSignal) => resolve([exitCode, exitSignal])),
    );
    assert.deepEqual([code, signal], [null, "SIGKILL"], "killed, not exited");
    const journaled = (await readFile(chargeJournalPath(dataDir), "utf8")).trim().split("\n");
    assert.equal(journaled.length, 1, "the charge was in the journal when the process died");
    assert.deepEqual(
      await storedAt(dataDir),
      { rows: [], channel: { charged: "0", signed: "0" } },
      "and not in the database",
    );

    const ledger = await openLedger({ dataDir });
    const channel = await ledger.channels.get(channelId);
    assert.equal(channel?.chargedAtomic, 37n);
    assert.equal(channel?.signedMaxAtomic, 100n);
    await ledger.close();
    assert.equal(await readFile(chargeJournalPath(dataDir), "utf8"), "", "the journal is emptied");
    assert.deepEqual(await storedAt(dataDir), {
      rows: [{ id: "1000", status: "settled", charge: "37" }],
      channel: { charged: "37", signed: "100" },
    });

    // The same line again (a journal not emptied before a kill), and a line the kill cut short: nothing more.
    await writeFile(chargeJournalPath(dataDir), `${journaled[0]}\n${journaled[0]?.slice(0, 40)}`);
    const again = await openLedger({ dataDir });
    assert.equal((await again.channels.get(channelId))?.chargedAtomic, 37n);
    await again.close();
    assert.deepEqual(await storedAt(dataDir), {
      rows: [{ id: "1000", status: "settled", charge: "37" }],
      channel: { charged: "37", signed: "100" },
    });
  });

  test("a charge the database fails to write after its answer stays journaled, its channel takes no request until a later try writes it, once; a stop before that leaves it to the next opening", async () => {
    const dataDir = await freshDir();
    const { pglite, sql, failCharges } = await failableLedgerSql(dataDir);
    const ledger = await createLedger(sql, { chargeJournal: openChargeJournal(chargeJournalPath(dataDir)) });
    const first = journalTestChannel();
    await ledger.channels.update(channelId, () => ({ next: first, result: undefined }));
    const charge = () =>
      ledger.channels.update(channelId, (current) => {
        const { next, paymentId, outcome, claim } = journalTestCharge(current!);
        return { next, result: next.chargedAtomic, alsoWrite: channelRowWrite(paymentId, outcome, claim) };
      });
    const takeRequest = () =>
      ledger.channels.update(channelId, (current) => ({
        next: { ...current!, pending: { id: "next", maxAtomic: 174n, expiresAt: Date.now() + 60_000 } },
        result: true,
      }));
    const journalLines = async () =>
      (await readFile(chargeJournalPath(dataDir), "utf8")).split("\n").filter(Boolean);
    assert.equal(await charge(), 37n, "written");
    await ledger.channels.get(channelId);
    assert.deepEqual(await journalLines(), [], "a written charge leaves the journal");

    failCharges(true);
    assert.equal(await charge(), 74n, "answered: the write comes after");
    assert.equal((await ledger.channels.get(channelId))?.chargedAtomic, 74n, "read once the write is over");
    assert.equal((await stored(pglite)).channel?.charged, "37", "the database failed it");
    // Another channel's charge, written: the journal is not cut while the failed charge waits, so
    // the failed line is never out of the file, not even for a moment.
    const failedLine = await readFile(chargeJournalPath(dataDir), "utf8");
    const other = testChannelId(0x72);
    await ledger.channels.update(other, () => ({ next: testChannel(0x72), result: undefined }));
    await ledger.channels.update(other, (current) => {
      const { next, paymentId, outcome, claim } = journalTestCharge(current!, 5n, 1_500);
      return { next, result: undefined, alsoWrite: channelRowWrite(paymentId, outcome, claim) };
    });
    await ledger.channels.get(other);
    const kept = await readFile(chargeJournalPath(dataDir), "utf8");
    assert.ok(kept.startsWith(failedLine), "the file was only appended to");
    assert.deepEqual(
      kept
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line).chargedBeforeAtomic),
      ["37", "0"],
      "the failed charge, then the other channel's written one",
    );
    await assert.rejects(
      takeRequest(),
      /its last charge is not in the database yet \(Error: No space left on device\); it takes no request until the charge is written/,
    );
    await assert.rejects(charge(), /takes no request/);
    // Still failing on the first tries (after 1 s, then 2 s): still refused.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await assert.rejects(takeRequest(), /takes no request/);
    assert.equal((await journalLines()).length, 2, "the failed charge is kept in the journal");

    // The disk has room again: the next try writes the charge, and the channel takes requests.
    failCharges(false);
    const healedAt = Date.now();
    for (;;) {
      const taken = await takeRequest().catch(() => false);
      if (taken) break;
      assert.ok(Date.now() - healedAt < 5_000, "written on the next try, within 2 s");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(await journalLines(), [], "the journal is emptied once the charge is written");
    assert.equal((await stored(pglite)).channel?.charged, "74");

    // A failed charge left when the ledger closes is written at the next opening.
    await ledger.channels.update(channelId, (current) => ({
      next: { ...current!, pending: undefined },
      result: undefined,
    }));
    failCharges(true);
    assert.equal(await charge(), 111n);
    await ledger.channels.get(channelId);
    await ledger.close();
    const reopened = await openLedger({ dataDir });
    assert.equal((await reopened.channels.get(channelId))?.chargedAtomic, 111n);
    assert.equal(
      await reopened.channels.update(channelId, (current) => ({
        next: { ...current!, pending: { id: "next", maxAtomic: 211n, expiresAt: Date.now() + 60_000 } },
        result: true,
      })),
      true,
      "the channel takes requests again",
    );
    await reopened.close();
    assert.deepEqual(await storedAt(dataDir), {
      rows: [
        { id: "1000", status: "settled", charge: "37" },
        { id: "1037", status: "settled", charge: "37" },
        { id: "1074", status: "settled", charge: "37" },
        { id: "1500", status: "settled", charge: "5" },
      ],
      channel: { charged: "111", signed: "174" },
    });
  });

  test("an opening whose journaled charge cannot be written fails with words to act on, and keeps the journal", async () => {
    const dataDir = await freshDir();
    const ledger = await openLedger({ dataDir });
    await ledger.channels.update(channelId, () => ({ next: journalTestChannel(), result: undefined }));
    await ledger.close();
    const { next, paymentId, outcome, claim } = journalTestCharge(journalTestChannel());
    const call = channelRowWrite(paymentId, outcome, claim).withCharge!(channelId, next);
    const line = JSON.stringify({ v: 1, channelId, chargedBeforeAtomic: "0", params: call.params });
    await appendFile(chargeJournalPath(dataDir), `${line}\n`);
    const pglite = await createPgliteClient({ dataDir });
    const failing: SqlClient = {
      ...pglite,
      query: (text, params) =>
        text.includes("tollgate_charge_voucher_row(")
          ? Promise.reject(new Error("could not extend file: No space left on device"))
          : pglite.query(text, params),
    };
    await assert.rejects(
      createLedger(failing, { chargeJournal: openChargeJournal(chargeJournalPath(dataDir)) }),
      /could not be written from .*charges\.jsonl .*No space left on device.*the journal is kept: make the ledger writable again/,
    );
    assert.equal(await readFile(chargeJournalPath(dataDir), "utf8"), `${line}\n`, "the journal is kept");
    const reopened = await openLedger({ dataDir });
    assert.equal(
      (await reopened.channels.get(channelId))?.chargedAtomic,
      37n,
      "written once the database takes it",
    );
    await reopened.close();
  });

  test("a journal line that cannot be read, other than a last line cut short, fails the opening and keeps the file", async () => {
    const dataDir = await freshDir();
    const ledger = await openLedger({ dataDir });
    await ledger.channels.update(channelId, () => ({ next: journalTestChannel(), result: undefined }));
    await ledger.close();
    const text = `{"v":1,"channelId":"${channelId}","chargedBefore\n{"v":1}\n`;
    await writeFile(chargeJournalPath(dataDir), text);
    await assert.rejects(
      openLedger({ dataDir }),
      /line 1 of the ledger's charge journal .* is not a charge this version writes; the journal is kept/,
    );
    assert.equal(await readFile(chargeJournalPath(dataDir), "utf8"), text, "the journal is kept");
  });

  test("closing the ledger writes the charges answered and not yet written, then refuses more: nothing is left in the journal", async () => {
    const dataDir = await freshDir();
    const ledger = await openLedger({ dataDir });
    await ledger.channels.update(channelId, () => ({ next: journalTestChannel(), result: undefined }));
    const charge = () =>
      ledger.channels.update(channelId, (current) => {
        const { next, paymentId, outcome, claim } = journalTestCharge(current!);
        return { next, result: true, alsoWrite: channelRowWrite(paymentId, outcome, claim) };
      });
    assert.equal(await charge(), true, "answered, its write to come");
    await ledger.close();
    assert.equal(await readFile(chargeJournalPath(dataDir), "utf8"), "", "nothing left for a replay");
    await assert.rejects(charge(), /closed/, "a charge after the close is refused");
    assert.equal(await readFile(chargeJournalPath(dataDir), "utf8"), "", "and never journaled");
    assert.deepEqual(await storedAt(dataDir), {
      rows: [{ id: "1000", status: "settled", charge: "37" }],
      channel: { charged: "37", signed: "100" },
    });
  });

  test("a channel whose answered charge is not written yet is never dropped from memory for a stale read of the database", async () => {
    const dataDir = await freshDir();
    const { pglite, sql, failCharges } = await failableLedgerSql(dataDir);
    const migrated = await createLedger(sql);
    const journal = openChargeJournal(chargeJournalPath(dataDir));
    // One channel kept in memory: any other channel used pushes the least recently used one out.
    const channels = createChannelLedger(sql, {
      keptChannels: 1,
      deferCharges: { journal, logger: silentLogger, inFlight: new Set() },
    });
    await channels.update(channelId, () => ({ next: journalTestChannel(), result: undefined }));
    failCharges(true);
    await channels.update(channelId, (current) => {
      const { next, paymentId, outcome, claim } = journalTestCharge(current!);
      return { next, result: undefined, alsoWrite: channelRowWrite(paymentId, outcome, claim) };
    });
    await channels.get(channelId);
    failCharges(false);
    await channels.update(testChannelId(0x73), () => ({ next: testChannel(0x73), result: undefined }));
    assert.equal((await stored(pglite)).channel?.charged, "0", "the database failed the charge");
    assert.equal(
      (await channels.get(channelId))?.chargedAtomic,
      37n,
      "the channel as answered, not the database's stale row",
    );
    journal.close();
    await migrated.close();
  });
});
