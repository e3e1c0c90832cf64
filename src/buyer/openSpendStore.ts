import { mkdir, realpath } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { createPgliteClient, createPostgresClient, lockFile } from "../ledger/index.js";
import { createSpendStore } from "./createSpendStore.js";
import type { SpendStore } from "./SpendStore.js";

export type OpenSpendStoreParameters = {
  /**
   * Tollgate's data directory; the store is the PGlite database in `<dataDir>/spend`.
   * `"memory://"` keeps it in memory. Default `~/.tollgate`.
   */
  dataDir?: string | undefined;
  /** A PostgreSQL URL instead of PGlite: several processes can then share one store. */
  connectionString?: string | undefined;
  /** How long to wait for another process holding the PGlite store. Default 15 s. */
  lockTimeoutMs?: number | undefined;
  now?: () => Date;
};

/** `~/.tollgate`: where Tollgate keeps the buyer's state unless told otherwise. */
export function defaultDataDir(): string {
  return join(homedir(), ".tollgate");
}

/** Stores open in this process, by PGlite directory: paying fetches on one data directory share one. */
const openStores = new Map<string, { store: Promise<SpendStore>; users: number }>();

/**
 * Opens the buyer's spend store: PGlite under the data directory by default (one process at a
 * time, guarded by a lock file; within the process, callers on the same directory share one
 * store, closed when the last one closes), or PostgreSQL.
 * @example
 * const store = await openSpendStore({ dataDir: "/home/me/.tollgate" });
 * console.log(await store.daySpend());
 */
export async function openSpendStore({
  dataDir = defaultDataDir(),
  connectionString,
  lockTimeoutMs,
  now,
}: OpenSpendStoreParameters = {}): Promise<SpendStore> {
  if (connectionString !== undefined) {
    return createSpendStore({ sql: await createPostgresClient({ connectionString }), now });
  }
  if (dataDir === "memory://") return createSpendStore({ sql: await createPgliteClient({}), now });
  // One directory however it is named (a symlink, a relative path): two stores on it would each count alone.
  await mkdir(dataDir, { recursive: true });
  const directory = join(await realpath(dataDir), "spend");
  let shared = openStores.get(directory);
  if (!shared) {
    const opening = openPglite(dataDir, directory, lockTimeoutMs, now);
    shared = { store: opening, users: 0 };
    openStores.set(directory, shared);
    opening.catch(() => openStores.delete(directory));
  }
  shared.users += 1;
  const store = await shared.store;
  const entry = shared;
  let closed = false;
  return {
    ...store,
    async close() {
      if (closed) return;
      closed = true;
      entry.users -= 1;
      if (entry.users > 0) return;
      openStores.delete(directory);
      await store.close();
    },
  };
}

async function openPglite(
  dataDir: string,
  directory: string,
  lockTimeoutMs: number | undefined,
  now: (() => Date) | undefined,
): Promise<SpendStore> {
  const unlock = await lockFile(join(dataDir, "tollgate-buyer.lock"), {
    timeoutMs: lockTimeoutMs,
    refusal: (holder) =>
      `the spend store in ${dataDir} is in use by ${holder}; use PostgreSQL to share one store between processes`,
  });
  try {
    const sql = await createPgliteClient({ dataDir: directory });
    return await createSpendStore({ sql, now, onClose: unlock });
  } catch (error) {
    await unlock();
    throw error;
  }
}
