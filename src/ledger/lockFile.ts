import { readlinkSync } from "node:fs";
import { mkdir, open, readFile, realpath, rename, rm, stat, utimes } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join } from "node:path";
import { TollgateError } from "../errors/index.js";

export type LockFileParameters = {
  /** How long to wait for another process to let go. Default 15 s. */
  timeoutMs?: number;
  /** Poll interval while waiting. Default 50 ms. */
  retryMs?: number;
  /** How often the holder touches its lock, so that another host or container can tell it runs. Default 5 s. */
  heartbeatMs?: number;
  /** A lock of another host or container left untouched this long is stale. Default 30 s. */
  staleAfterMs?: number;
  /** The refusal once the wait is over, given who holds the lock ("process 4242", …). */
  refusal: (holder: string) => string;
};

/** Lock files this process holds. */
const held = new Set<string>();

let place: string | undefined;
/**
 * Where this process's id means something: its host and, on Linux, its process namespace (each
 * container has its own, so two containers sharing a volume can both be pid 1).
 */
export function processPlace(): string {
  if (place === undefined) {
    let namespace = "";
    try {
      namespace = readlinkSync("/proc/self/ns/pid");
    } catch {
      // Not Linux: the host alone.
    }
    place = [hostname(), namespace].filter(Boolean).join(" ");
  }
  return place;
}

/** A lock's text: the holder's id on the first line, its place on the second (absent in older locks). */
function readHolder(text: string): { pid?: number; place?: string } {
  const [first = "", second = ""] = text.split("\n");
  const pid = Number.parseInt(first, 10);
  return { ...(Number.isInteger(pid) ? { pid } : {}), ...(second.trim() ? { place: second.trim() } : {}) };
}

/**
 * Takes an exclusive lock for this process (the file at `path`, created exclusively, holding its pid and
 * place): PGlite is one process's database, and two processes opening the same data directory lose each
 * other's writes. A lock left here by a process that no longer runs (or by an earlier run under this
 * process's id) is taken over at once. A lock of another host or container cannot be checked that way: its
 * holder touches it every `heartbeatMs`, and it is taken over once it was seen untouched for
 * `staleAfterMs` (however far apart the two clocks are). Resolves to the release function.
 */
export async function lockFile(
  path: string,
  {
    timeoutMs = 15_000,
    retryMs = 50,
    heartbeatMs = 5_000,
    staleAfterMs = 30_000,
    refusal,
  }: LockFileParameters,
): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  // The lock as this process knows it held, whatever the spelling of its folder (a symlink).
  const heldKey = join(await realpath(dirname(path)), basename(path));
  const mine = `${process.pid}\n${processPlace()}\n`;
  let giveUpAt = Date.now() + timeoutMs;
  /** A lock of elsewhere as first seen unchanged: its text, its modification time, and since when. */
  let watched: { text: string; mtimeMs: number; since: number } | undefined;
  let waitedForElsewhere = false;
  for (;;) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(mine);
      await handle.close();
      held.add(heldKey);
      const beat = setInterval(() => {
        const now = new Date();
        utimes(path, now, now).catch(() => undefined);
      }, heartbeatMs);
      beat.unref();
      return async () => {
        clearInterval(beat);
        held.delete(heldKey);
        // Removed only while it is still this process's lock.
        if ((await readFile(path, "utf8").catch(() => undefined)) === mine) await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    let text: string;
    let mtimeMs: number;
    try {
      text = await readFile(path, "utf8");
      mtimeMs = (await stat(path)).mtimeMs;
    } catch {
      continue; // let go meanwhile: try to create it again
    }
    const holder = readHolder(text);
    const here = holder.place === undefined || holder.place === processPlace();
    let stale: boolean;
    if (here) {
      // Left by a process that no longer runs, or by an earlier run under this same id (a container's
      // pid 1) that this process does not hold.
      stale =
        holder.pid !== undefined &&
        (holder.pid === process.pid ? !held.has(heldKey) : !isRunning(holder.pid));
    } else {
      if (!watched || watched.text !== text || watched.mtimeMs !== mtimeMs)
        watched = { text, mtimeMs, since: Date.now() };
      stale = Date.now() - watched.since >= staleAfterMs;
      // Waited long enough, once, to tell a holder elsewhere that stopped from one that runs.
      if (!waitedForElsewhere) {
        waitedForElsewhere = true;
        giveUpAt = Math.max(giveUpAt, Date.now() + staleAfterMs + retryMs);
      }
    }
    if (stale && (await takeOver(path, text))) continue;
    if (Date.now() >= giveUpAt) {
      const who =
        holder.pid === undefined
          ? "another process"
          : here
            ? `process ${holder.pid}`
            : `process ${holder.pid} of ${holder.place} (another host or container)`;
      throw new TollgateError({
        code: "TOLLGATE_LEDGER_FAILED",
        shortMessage: refusal(who),
        details: { lock: path, holder },
      });
    }
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}

/**
 * Moves a stale lock out of the way: renamed aside (one process wins the rename), and removed only if it
 * is still the stale one read; a lock another process took over in the meantime is put back. Answers
 * whether the path was freed.
 */
async function takeOver(path: string, staleText: string): Promise<boolean> {
  const aside = `${path}.${process.pid}.${Date.now()}.stale`;
  try {
    await rename(path, aside);
  } catch {
    return true; // gone already: try to create it again
  }
  const moved = await readFile(aside, "utf8").catch(() => "");
  if (moved === staleText) {
    await rm(aside, { force: true });
    return true;
  }
  await rename(aside, path).catch(() => undefined);
  return false;
}

/** Whether a process with this id runs (one of another user's counts). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
