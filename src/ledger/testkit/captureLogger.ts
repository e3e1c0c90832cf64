import { pino } from "pino";
import type { Logger } from "../../errors/index.js";

/** A real pino logger whose records land in `records`, for asserting what the ledger tells operators. */
export function captureLogger(): { logger: Logger; records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => records.push(JSON.parse(line)) });
  return { logger, records };
}
