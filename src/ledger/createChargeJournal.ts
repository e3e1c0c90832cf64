import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { TollgateError } from "../errors/index.js";

/**
 * One channel charge, as the journal keeps it until the database has it: the stored-function call that
 * writes it, and the channel's charged total it was made on (so a replay never writes over a later one).
 */
export type JournaledCharge = {
  channelId: string;
  /** The channel's charged total before this charge: the replay writes the charge only on that total. */
  chargedBeforeAtomic: string;
  text: string;
  params: unknown[];
};

/**
 * Charges answered before the embedded database holds them. A JSON answer waits for its charge: with the
 * journal, the charge is one synchronous append to a file (tens of microseconds) instead of the database's
 * write (one to two milliseconds of WASM on the serving thread), which follows as soon as the answer is out.
 * The file is emptied whenever every charge appended is in the database; the next opening of the ledger
 * writes whatever a killed process left in it. Appends reach the operating system before the answer goes
 * out, as the database's own writes do (PGlite runs without fsync): a killed process loses nothing.
 */
export type ChargeJournal = {
  readonly path: string;
  /** Appends a charge; throws when the file cannot take it (the charge then is not answered). */
  append(charge: JournaledCharge): void;
  /**
   * A charge appended earlier was written to the database (`ok`), or failed to be: the file is emptied
   * once none is outstanding, unless one failed, whose line then waits for the next opening.
   */
  written(ok: boolean): void;
  /** The charges a previous process appended and never saw written, in order; a torn last line is dropped. */
  leftOver(): JournaledCharge[];
  /** Empties the file (after `leftOver`'s charges were written). */
  clear(): void;
  close(): void;
};

const entrySchema = z.object({
  channelId: z.string(),
  chargedBeforeAtomic: z.string().regex(/^[0-9]+$/),
  text: z.string(),
  params: z.array(z.unknown()),
});

/** The journal file of a PGlite data dir: beside it, as `<dataDir>.charges.jsonl`. */
export function chargeJournalPath(dataDir: string): string {
  return `${resolve(dataDir)}.charges.jsonl`;
}

/** Opens (or creates) the charge journal at `path`. */
export function openChargeJournal(path: string): ChargeJournal {
  let fd: number;
  try {
    fd = openSync(path, "a+", 0o600);
  } catch (cause) {
    throw journalError(path, "open", cause);
  }
  let outstanding = 0;
  let keepLines = false;
  return {
    path,
    append(charge) {
      const line = `${JSON.stringify(charge)}\n`;
      try {
        writeSync(fd, line);
      } catch (cause) {
        throw journalError(path, "append a charge to", cause);
      }
      outstanding += 1;
    },
    written(ok) {
      outstanding -= 1;
      if (!ok) keepLines = true;
      if (outstanding > 0 || keepLines) return;
      try {
        ftruncateSync(fd, 0);
      } catch {
        // Lines left behind are harmless: the next opening passes over charges the database has.
      }
    },
    leftOver() {
      if (fstatSync(fd).size === 0) return [];
      const lines = readFileSync(path, "utf8").split("\n");
      const charges: JournaledCharge[] = [];
      for (const line of lines) {
        if (line.trim() === "") continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          // A line cut by the kill: its answer never went out.
          continue;
        }
        const entry = entrySchema.safeParse(parsed);
        if (entry.success) charges.push(entry.data);
      }
      return charges;
    },
    clear() {
      ftruncateSync(fd, 0);
      keepLines = false;
    },
    close() {
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
