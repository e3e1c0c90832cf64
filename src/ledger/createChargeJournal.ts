import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { TollgateError } from "../errors/index.js";

/**
 * One channel charge, as the journal keeps it until the database has it: the parameters of the stored
 * function that writes it (`tollgate_charge_voucher_row`, the version the line names), and the channel's
 * charged total it was made on (so a replay never writes over a later charge).
 */
export type JournaledCharge = {
  channelId: string;
  /** The channel's charged total before this charge: the replay writes the charge only on that total. */
  chargedBeforeAtomic: string;
  params: unknown[];
};

/** The form of the journal's lines; a line of another version is refused, not guessed at. */
const JOURNAL_VERSION = 1;

/** What `append` returns: the line, for `written`. */
export type JournalEntry = { readonly line: string };

/**
 * Charges answered before the embedded database holds them. A JSON answer waits for its charge: with the
 * journal, the charge is one synchronous append to a file (tens of microseconds) instead of the database's
 * write (one to two milliseconds of WASM on the serving thread), which follows as soon as the answer is out.
 * Whenever every charge in it is in the database, the file is emptied; while a charge whose write failed
 * waits for a later try, the file keeps growing, and the next opening of the ledger writes whatever of it
 * the database lacks. Appends reach the operating
 * system before the answer goes out, as the database's own writes do (PGlite runs without fsync): a killed
 * process loses nothing.
 */
export type ChargeJournal = {
  readonly path: string;
  /** Appends a charge, whole or not at all; throws when the file cannot take it (the charge is then not answered). */
  append(charge: JournaledCharge): JournalEntry;
  /** A charge appended earlier was written to the database (`ok`), or its write failed: its line then stays. */
  written(entry: JournalEntry, ok: boolean): void;
  /** A charge whose write failed was written since, on a later try: its line goes. */
  rewritten(entry: JournalEntry): void;
  /** Whether `close` was called. */
  readonly closed: boolean;
  /**
   * The charges a previous process appended and never saw written, in order. A last line cut short (its
   * answer never went out) is dropped; any other line that cannot be read throws, and the file is kept.
   */
  leftOver(): JournaledCharge[];
  /** Empties the file (after `leftOver`'s charges were written). */
  clear(): void;
  /** Closes the file; appending after this throws. */
  close(): void;
};

const entrySchema = z.object({
  v: z.literal(JOURNAL_VERSION),
  channelId: z.string().regex(/^0x[0-9a-f]{64}$/),
  chargedBeforeAtomic: z.string().regex(/^[0-9]+$/),
  params: z.array(z.unknown()),
});

/** The journal file of a PGlite data dir: beside it, as `<dataDir>.charges.jsonl`. */
export function chargeJournalPath(dataDir: string): string {
  return `${resolve(dataDir)}.charges.jsonl`;
}

/** Opens (or creates) the charge journal at `path`. */
export function openChargeJournal(path: string): ChargeJournal {
  let fd: number;
  let size: number;
  try {
    fd = openSync(path, "a+", 0o600);
    size = fstatSync(fd).size;
  } catch (cause) {
    throw journalError(path, "open", cause);
  }
  let closed = false;
  let outstanding = 0;
  /** Lines whose write failed and is not done yet: the file is not cut while there are any. */
  const failed: string[] = [];

  /** Appends `text` whole, or cuts the file back to where it was and throws. */
  const appendText = (text: string) => {
    const bytes = Buffer.from(text, "utf8");
    let wrote = 0;
    try {
      wrote = writeSync(fd, bytes);
      if (wrote !== bytes.length) throw new Error(`wrote ${wrote} of ${bytes.length} bytes`);
    } catch (cause) {
      if (wrote > 0)
        try {
          ftruncateSync(fd, size);
        } catch {
          // A line cut short stays at the end, where the next opening drops it: its answer never went out.
        }
      throw journalError(path, "append a charge to", cause);
    }
    size += bytes.length;
  };

  /**
   * Once every charge in the file is in the database, the file is emptied. While a charge whose write
   * failed is not written yet, nothing is cut: the file only grows, so no moment exists when that
   * charge is in memory alone (the next opening passes over the lines of charges the database has).
   */
  const cutBack = () => {
    if (outstanding > 0 || failed.length > 0 || closed) return;
    try {
      ftruncateSync(fd, 0);
      size = 0;
    } catch {
      // Lines left behind are harmless: the next opening passes over charges the database has.
    }
  };

  return {
    path,
    append(charge) {
      if (closed) throw journalError(path, "append a charge to", new Error("the ledger is closed"));
      const line = `${JSON.stringify({ v: JOURNAL_VERSION, ...charge })}\n`;
      appendText(line);
      outstanding += 1;
      return { line };
    },
    written(entry, ok) {
      outstanding -= 1;
      if (!ok) failed.push(entry.line);
      cutBack();
    },
    rewritten(entry) {
      const at = failed.indexOf(entry.line);
      if (at >= 0) failed.splice(at, 1);
      cutBack();
    },
    get closed() {
      return closed;
    },
    leftOver() {
      if (fstatSync(fd).size === 0) return [];
      const lines = readFileSync(path, "utf8").split("\n");
      // The text after the last newline is a line the kill cut short, or nothing.
      lines.pop();
      return lines.map((line, index) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          parsed = undefined;
        }
        const entry = entrySchema.safeParse(parsed);
        if (!entry.success)
          throw new TollgateError({
            code: "TOLLGATE_LEDGER_FAILED",
            shortMessage: `line ${index + 1} of the ledger's charge journal ${path} is not a charge this version writes; the journal is kept: restore the file, or start the version that wrote it`,
            details: { path, line: index + 1 },
          });
        const { channelId, chargedBeforeAtomic, params } = entry.data;
        return { channelId, chargedBeforeAtomic, params };
      });
    },
    clear() {
      ftruncateSync(fd, 0);
      size = 0;
      failed.length = 0;
    },
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}

function journalError(path: string, action: string, cause: unknown): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_LEDGER_FAILED",
    shortMessage: `could not ${action} the ledger's charge journal ${path}: ${String((cause as Error)?.message ?? cause)}; check the disk has room and the directory is writable`,
    details: { path },
    cause,
  });
}
