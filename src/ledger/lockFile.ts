import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { TollgateError } from "../errors/index.js";

export type LockFileParameters = {
  /** How long to wait for another process to let go. Default 15 s. */
  timeoutMs?: number;
  /** Poll interval while waiting. Default 50 ms. */
  retryMs?: number;
  /** The refusal once the wait is over, given the holding process's id. */
  refusal: (holder: number | undefined) => string;
};

/** Lock files this process holds. */
const held = new Set<string>();

/**
 * Takes an exclusive lock for this process (the file at `path`, created exclusively, holding its pid):
 * PGlite is one process's database, and two processes opening the same data directory lose each other's
 * writes. A lock left by a process that no longer runs (or by an earlier run under this process's id) is
 * taken over. Resolves to the release function.
 */
export async function lockFile(
  path: string,
  { timeoutMs = 15_000, retryMs = 50, refusal }: LockFileParameters,
): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true });
  const giveUpAt = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      held.add(path);
      return async () => {
        held.delete(path);
        await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    // Left by a process that no longer runs, or by an earlier run under this same id (a container's pid 1)
    // that this process does not hold.
    const stale = Number.isInteger(holder) && (holder === process.pid ? !held.has(path) : !isRunning(holder));
    if (stale && (await takeOver(path, holder))) continue;
    if (Date.now() >= giveUpAt) {
      throw new TollgateError({
        code: "TOLLGATE_LEDGER_FAILED",
        shortMessage: refusal(Number.isInteger(holder) ? holder : undefined),
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
async function takeOver(path: string, staleHolder: number): Promise<boolean> {
  const aside = `${path}.${process.pid}.${Date.now()}.stale`;
  try {
    await rename(path, aside);
  } catch {
    return true; // gone already: try to create it again
  }
  const moved = Number.parseInt(await readFile(aside, "utf8").catch(() => ""), 10);
  if (moved === staleHolder) {
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
