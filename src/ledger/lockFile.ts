import { mkdir, open, readFile, rm } from "node:fs/promises";
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

/**
 * Takes an exclusive lock for this process (the file at `path`, created exclusively, holding its pid):
 * PGlite is one process's database, and two processes opening the same data directory lose each other's
 * writes. A lock left by a process that no longer runs is taken over. Resolves to the release function.
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
      return async () => {
        await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    if (Number.isInteger(holder) && holder !== process.pid && !isRunning(holder)) {
      await rm(path, { force: true });
      continue;
    }
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

/** Whether a process with this id runs (one of another user's counts). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
