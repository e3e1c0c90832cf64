// The lock that keeps a PGlite data dir to one process, when the processes sharing its volume live in
// different hosts or containers (two containers can both be pid 1): a process id there says nothing here.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { lockFile, processPlace } from "./lockFile.js";

const tempDirs: string[] = [];
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

async function lockPath() {
  const dir = await mkdtemp(join(tmpdir(), "tollgate-lock-"));
  tempDirs.push(dir);
  return join(dir, "ledger.lock");
}

/** An id no process here has: one that just exited. */
const stoppedPid = () =>
  Number(execFileSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]));

const refusal = (holder: string) => `held by ${holder}`;

test("a lock of another container that its holder keeps touching is not taken over, though its id runs nowhere here", async () => {
  const path = await lockPath();
  const text = `${stoppedPid()}\nweb-2 pid:[4026532999]\n`;
  await writeFile(path, text);
  const beat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, 20);
  try {
    const startedAt = Date.now();
    await assert.rejects(
      lockFile(path, { timeoutMs: 50, retryMs: 10, staleAfterMs: 300, refusal }),
      /held by process \d+ of web-2 pid:\[4026532999\] \(another host or container\)/,
    );
    assert.ok(Date.now() - startedAt >= 300, "it waited long enough to see the holder touch it");
    assert.equal(await readFile(path, "utf8"), text, "the lock is still the other container's");
  } finally {
    clearInterval(beat);
  }
});

test("a lock of another container left untouched is taken over once seen unchanged for staleAfterMs, whatever time its clock wrote", async () => {
  const path = await lockPath();
  await writeFile(path, `1\nweb-2 pid:[4026532999]\n`);
  // A clock far ahead on the other side: the lock looks touched in the future.
  const future = new Date(Date.now() + 3_600_000);
  await utimes(path, future, future);
  const startedAt = Date.now();
  const release = await lockFile(path, { timeoutMs: 50, retryMs: 10, staleAfterMs: 200, refusal });
  assert.ok(Date.now() - startedAt >= 200, "not before it was seen unchanged that long");
  assert.equal(await readFile(path, "utf8"), `${process.pid}\n${processPlace()}\n`);
  await release();
  await assert.rejects(readFile(path, "utf8"), "released");
});

test("the holder touches its lock while it holds it, and its release leaves a lock that is no longer its own", async () => {
  const path = await lockPath();
  const release = await lockFile(path, { heartbeatMs: 20, refusal });
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.ok((await stat(path)).mtimeMs > Date.now() - 10_000, "touched again");
  // Taken over by another container that judged it stale: this process's release does not remove it.
  await writeFile(path, `1\nweb-2 pid:[4026532999]\n`);
  await release();
  assert.equal(await readFile(path, "utf8"), `1\nweb-2 pid:[4026532999]\n`);
});

test("a lock of this host and namespace, in the older form (the id alone), is judged by its id as before", async () => {
  const path = await lockPath();
  await writeFile(path, String(stoppedPid()));
  const release = await lockFile(path, { timeoutMs: 50, retryMs: 10, refusal });
  await release();
  await writeFile(path, String(process.ppid));
  await assert.rejects(lockFile(path, { timeoutMs: 50, retryMs: 10, refusal }), /held by process \d+$/);
});

test("a lock this process holds is not taken over when asked for through a symlink to its folder", async () => {
  const path = await lockPath();
  const alias = `${join(path, "..")}-alias`;
  await symlink(join(path, ".."), alias);
  tempDirs.push(alias);
  const release = await lockFile(path, { refusal });
  try {
    // Observed before: the alias's spelling was not among the held locks, so the lock was taken over as stale.
    await assert.rejects(
      lockFile(join(alias, "ledger.lock"), { timeoutMs: 50, retryMs: 10, refusal }),
      new RegExp(`held by process ${process.pid}$`),
    );
    assert.equal(await readFile(path, "utf8"), `${process.pid}\n${processPlace()}\n`, "still this holder's");
  } finally {
    await release();
  }
});
