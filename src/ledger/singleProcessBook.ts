import type { SqlClient } from "./SqlClient.js";

/**
 * A channel whose escrow holds less than was charged on it, all of it claimed (so a claim confirmed it):
 * its payer withdrew before the charges were claimed, and owes the rest until it deposits it.
 */
export const SHORT_CHANNEL = "charged_atomic > balance_atomic AND total_claimed_atomic >= balance_atomic";
/** A `payments` row that refuses its payer: a debt it caused (not one that lapsed on the seller's side). */
export const BLOCKING_DEBT = "status = 'debt' AND debt_blocks_payer";

/** How many ids a single-process ledger takes from the sequence at once. */
const ID_BLOCK = 16;

/**
 * What a ledger in a database one process holds alone (PGlite) answers without a statement: who
 * owes (every debt is marked and resolved through a ledger of this process, which counts it, and
 * every channel's balance and charges are written through this process's channel ledger, which
 * tells it of a shortfall) and the next payment ids (taken from the sequence a block at a time).
 * Shared by every ledger over the same client, so two of them never disagree.
 */
export type SingleProcessBook = {
  /** Whether the payer has an open debt, or a channel whose escrow holds less than was charged on it. */
  owes(network: string, payer: string): Promise<boolean>;
  /** Whether the payer is counted as having an open debt now (no statement). */
  counts(network: string, payer: string): boolean;
  /** Counts the payer's open debts again, from the table: after any move into or out of `debt`. */
  recount(network: string, payer: string): Promise<void>;
  /** A channel as just written: short when its charges are above its escrow's balance. */
  noteChannel(channel: { network: string; payer: string; channelId: string; short: boolean }): Promise<void>;
  /** Reads the short channels again: after rows left the channels table (set aside on a new chain). */
  reloadChannels(): void;
  takeId(): Promise<number>;
  /** Forgets what it knows (the table was emptied under it). */
  forget(): void;
};

const books = new WeakMap<SqlClient, SingleProcessBook>();

/** The book of the ledgers over `sql`, a database this process holds alone. */
export function singleProcessBook(sql: SqlClient): SingleProcessBook {
  const known = books.get(sql);
  if (known) return known;
  const debts = new Map<string, number>();
  /** The payer's channels whose escrow holds less than their charges. */
  const short = new Map<string, Set<string>>();
  const keyOf = (network: string, payer: string) => `${network} ${payer}`;
  const markShort = (key: string, channelId: string, isShort: boolean) => {
    const channels = short.get(key);
    if (isShort) short.set(key, (channels ?? new Set()).add(channelId));
    else if (channels?.delete(channelId) && channels.size === 0) short.delete(key);
  };
  let loading: Promise<void> | undefined;
  const load = () => {
    // One statement, so a debt counted again after it (recount) is applied after it too.
    loading ??= (async () => {
      const rows = await sql.query<{ kind: unknown; network: unknown; payer: unknown; value: unknown }>(
        `SELECT 'debt' AS kind, network, payer, count(*)::text AS value FROM payments WHERE ${BLOCKING_DEBT}
         GROUP BY network, payer
         UNION ALL
         SELECT 'short', network, payer, channel_id FROM channels WHERE ${SHORT_CHANNEL}`,
      );
      debts.clear();
      short.clear();
      for (const row of rows) {
        const key = keyOf(String(row.network), String(row.payer));
        if (row.kind === "debt") debts.set(key, Number(row.value));
        else markShort(key, String(row.value), true);
      }
    })().catch((error: unknown) => {
      // Read again by the next caller: a failed read must not pass for "nobody owes".
      loading = undefined;
      throw error;
    });
    return loading;
  };
  const ids: number[] = [];
  let refilling: Promise<void> | undefined;
  let generation = 0;
  const refill = () => {
    const taken = generation;
    refilling ??= sql
      .query<{ id: unknown }>(
        `SELECT nextval(pg_get_serial_sequence('payments', 'id'))::text AS id FROM generate_series(1, ${ID_BLOCK})`,
      )
      .then((rows) => {
        if (taken === generation) for (const row of rows) ids.push(Number(row.id));
      })
      .finally(() => {
        refilling = undefined;
      });
    return refilling;
  };
  const book: SingleProcessBook = {
    async owes(network, payer) {
      await load();
      const key = keyOf(network, payer);
      return (debts.get(key) ?? 0) > 0 || short.has(key);
    },
    counts: (network, payer) => (debts.get(keyOf(network, payer)) ?? 0) > 0,
    async recount(network, payer) {
      // Read after the move committed, and applied after any earlier read of all debts (PGlite runs
      // one statement at a time), so the count is the table's.
      const [row] = await sql.query<{ open: unknown }>(
        `SELECT count(*)::int AS open FROM payments WHERE network = $1 AND payer = $2 AND ${BLOCKING_DEBT}`,
        [network, payer],
      );
      const open = Number(row?.open ?? 0);
      if (open > 0) debts.set(keyOf(network, payer), open);
      else debts.delete(keyOf(network, payer));
    },
    async noteChannel({ network, payer, channelId, short: isShort }) {
      // Applied after the first read of the table, which may have been made before this write.
      await load();
      markShort(keyOf(network, payer), channelId, isShort);
    },
    reloadChannels() {
      loading = undefined;
    },
    forget() {
      generation++;
      debts.clear();
      short.clear();
      loading = undefined;
      ids.length = 0;
    },
    async takeId() {
      while (ids.length === 0) await refill();
      const id = ids.shift() as number;
      // The next block is taken on a later turn, off the path of the request that asked.
      if (ids.length <= ID_BLOCK / 4 && !refilling) setImmediate(() => void refill().catch(() => undefined));
      return id;
    },
  };
  books.set(sql, book);
  return book;
}

/** Makes the ledgers over `sql` forget their debt counts and pooled ids: for a table emptied under them (tests). */
export function forgetSingleProcessBook(sql: SqlClient): void {
  books.get(sql)?.forget();
}
