// A gateway's record beside its PGlite data dir, when the processes sharing the volume live in different
// hosts or containers: the other's process id and loopback address mean nothing here.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openLedger, processPlace } from "../ledger/index.js";
import { claimLedgerDir, ledgerAccessFile, ledgerHolder } from "./ledgerAccess.js";

const tempDirs: string[] = [];
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

test("a record of another container is not read as a gateway here, is left until this process holds the ledger, and is never removed by a failed start; a record of a running process here refuses", async () => {
  const parent = await mkdtemp(join(tmpdir(), "tollgate-access-"));
  tempDirs.push(parent);
  const dataDir = join(parent, "ledger");
  // Its pid 1 runs here too (this container's init), which says nothing of the other container's.
  const elsewhere = { pid: 1, place: "web-2 pid:[4026532999]", url: "http://127.0.0.1:1", token: "x" };
  await writeFile(ledgerAccessFile(dataDir), JSON.stringify(elsewhere));
  assert.equal(await ledgerHolder(dataDir), undefined, "not a gateway this process can reach");
  // Left as it is until this process holds the ledger (the ledger's lock decides), and a start that
  // fails before then removes nothing of the other's.
  const failed = await claimLedgerDir(dataDir);
  assert.deepEqual(JSON.parse(await readFile(ledgerAccessFile(dataDir), "utf8")), elsewhere);
  await failed.release();
  assert.deepEqual(JSON.parse(await readFile(ledgerAccessFile(dataDir), "utf8")), elsewhere);
  // Once this process serves the ledger, the record is its own, and its release removes it.
  const ledger = await openLedger({ dataDir: "memory://" });
  const claim = await claimLedgerDir(dataDir);
  await claim.serve(ledger);
  const served = JSON.parse(await readFile(ledgerAccessFile(dataDir), "utf8"));
  assert.equal(served.pid, process.pid);
  assert.equal(served.place, processPlace());
  await claim.release();
  await ledger.close();
  await assert.rejects(readFile(ledgerAccessFile(dataDir), "utf8"), "removed with its release");

  await writeFile(ledgerAccessFile(dataDir), JSON.stringify({ pid: process.ppid, place: processPlace() }));
  assert.equal((await ledgerHolder(dataDir))?.pid, process.ppid);
  await assert.rejects(claimLedgerDir(dataDir), /held by a running gateway \(process \d+\)/);
});
