// Facilitator verify/settle durations as the serving stack itself logged them (pino lines with
// `op` and `durationMs`), split by variant through the time windows of the one-at-a-time runs.
import { readFile } from "node:fs/promises";
import type { Variant } from "./payingClient.js";
import { type Summary, summarize } from "./stats.js";

export type InSituFacilitator = { verify: Summary; settle: Summary };

type LogLine = { time?: number; op?: string; outcome?: string; durationMs?: number };

/** In-situ verify and settle times per variant, from the stack's log (whole milliseconds, as logged). */
export async function facilitatorTimesFromLog(
  logFile: string,
  windows: Partial<Record<Variant, ReadonlyArray<readonly [number, number]>>>,
): Promise<Partial<Record<Variant, InSituFacilitator>>> {
  const lines = (await readFile(logFile, "utf8")).split("\n");
  const found: Partial<Record<Variant, { verify: number[]; settle: number[] }>> = {};
  for (const text of lines) {
    if (!text.includes('"durationMs"')) continue;
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      continue;
    }
    if ((line.op !== "verify" && line.op !== "settle") || line.time === undefined) continue;
    if (typeof line.durationMs !== "number") continue;
    for (const [variant, spans] of Object.entries(windows) as Array<[Variant, Array<[number, number]>]>) {
      if (!spans.some(([start, end]) => line.time! >= start && line.time! <= end)) continue;
      found[variant] ??= { verify: [], settle: [] };
      const bucket = found[variant];
      bucket[line.op].push(line.durationMs);
    }
  }
  const result: Partial<Record<Variant, InSituFacilitator>> = {};
  for (const [variant, bucket] of Object.entries(found) as Array<
    [Variant, { verify: number[]; settle: number[] }]
  >) {
    result[variant] = { verify: summarize(bucket.verify), settle: summarize(bucket.settle) };
  }
  return result;
}
