import { TollgateError } from "../errors/index.js";

/** Wraps a driver failure as TOLLGATE_LEDGER_FAILED, naming the statement; TollgateErrors pass through. */
export function ledgerError(cause: unknown, sql: string): TollgateError {
  if (cause instanceof TollgateError) return cause;
  const driver = cause as { code?: unknown; message?: unknown; constraint?: unknown };
  return new TollgateError({
    code: "TOLLGATE_LEDGER_FAILED",
    shortMessage: `ledger query failed: ${typeof driver.message === "string" ? driver.message : String(cause)}`,
    details: {
      statement: firstLine(sql),
      ...(typeof driver.code === "string" ? { sqlState: driver.code } : {}),
      ...(typeof driver.constraint === "string" ? { constraint: driver.constraint } : {}),
    },
    cause,
  });
}

/** Runs one driver call; its failure becomes TOLLGATE_LEDGER_FAILED naming the statement. */
export async function runStatement<T>(sql: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (cause) {
    throw ledgerError(cause, sql);
  }
}

function firstLine(sql: string): string {
  const line = sql.trim().split("\n")[0] ?? "";
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

/**
 * SQLSTATE classes of a failure that passes without the statement changing: the connection (08), the
 * server out of room (53), shut down or restarting (57P01–57P03), a serialization failure or deadlock (40).
 */
export const PASSING_SQL_STATE = /^(08|53|57P0[123]|40001|40P01)/;

/**
 * Whether a ledger failure may pass on its own, so the same write may be tried again: the database
 * was unreachable, dropped the connection, or was out of room (the PostgreSQL client marks them
 * `mayPass`); not a refused move, a bad value, a closed ledger, or an embedded database's failure.
 */
export function ledgerFailureMayPass(error: unknown): boolean {
  return (
    error instanceof TollgateError &&
    error.code === "TOLLGATE_LEDGER_FAILED" &&
    error.details.mayPass === true
  );
}
