import { createPostgresClient } from "../../../src/ledger/index.js";

/** `npm run test:reliability -- --quick`: shorter runs, same assertions. */
export const quick = process.env.TOLLGATE_RELIABILITY_QUICK === "1";

/** The PostgreSQL the suite runs against (CI starts one); tests may read the environment, the library never does. */
export const databaseUrl = process.env.TOLLGATE_TEST_DATABASE_URL || undefined;

/** The skip reason when no PostgreSQL is configured. */
export const needsPostgres = databaseUrl
  ? false
  : "set TOLLGATE_TEST_DATABASE_URL=postgres://user:pass@host:5432/db (CI does) to run this against PostgreSQL";

/** A schema of its own for one test, dropped by `drop()`: replicas and restarts share it, other tests do not. */
export async function freshSchema(label: string): Promise<{ schema: string; drop(): Promise<void> }> {
  if (!databaseUrl) throw new Error("no TOLLGATE_TEST_DATABASE_URL");
  const schema = `tollgate_rel_${label}_${process.pid}_${Date.now().toString(36)}`;
  return {
    schema,
    async drop() {
      const sql = await createPostgresClient({ connectionString: databaseUrl });
      try {
        await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await sql.close();
      }
    },
  };
}

/** Waits until `check` holds, polling every `everyMs`, for at most `timeoutMs`; returns whether it held. */
export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 100,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return check();
}

/** A small seeded PRNG (mulberry32), so a fuzz run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
