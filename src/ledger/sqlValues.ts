import { TollgateError } from "../errors/index.js";

const UINT256_LIMIT = 1n << 256n;
const INT4_MAX = 2 ** 31 - 1;

/** A money amount as the text a NUMERIC(78,0) parameter takes; refuses non-bigints and values outside uint256. */
export function atomicParam(value: bigint, field: string): string {
  if (typeof value !== "bigint" || value < 0n || value >= UINT256_LIMIT) {
    throw invalid(field, "must be a bigint between 0 and 2^256 - 1", String(value));
  }
  return value.toString(10);
}

/** A token count as an INTEGER parameter. */
export function tokenCountParam(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > INT4_MAX) {
    throw invalid(field, "must be a non-negative integer", String(value));
  }
  return value;
}

/** A value as JSON text for a JSONB parameter (passed as text so no driver guesses at arrays or bigints). */
export function jsonParam(value: unknown, field: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (cause) {
    throw invalid(field, "is not JSON-serialisable", String(cause), cause);
  }
  if (json === undefined) throw invalid(field, "is not JSON-serialisable", typeof value);
  return json;
}

/** A required non-empty string (a reason, a transaction hash). */
export function textParam(value: string, field: string): string {
  if (typeof value !== "string" || value.length === 0)
    throw invalid(field, "must be a non-empty string", String(value));
  return value;
}

function invalid(field: string, problem: string, value: string, cause?: unknown): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_LEDGER_FAILED",
    shortMessage: `ledger value ${field} ${problem}`,
    details: { field, value },
    cause,
  });
}
