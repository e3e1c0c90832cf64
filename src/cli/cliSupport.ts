import { type ParseArgsConfig, parseArgs } from "node:util";
import { pino } from "pino";
import type { z } from "zod";
import { type Logger, TollgateError } from "../errors/index.js";

/** Exit codes shared by every command; documented in the README. */
export const exitCodes = {
  ok: 0,
  usage: 2,
  failure: 1,
  policyRefused: 3,
  paymentFailed: 4,
  httpError: 5,
} as const;

/** Parses `argv` against `options` and validates the result with `schema`. */
export function parseFlags<T extends z.ZodType>(
  command: string,
  argv: string[],
  options: ParseArgsConfig["options"],
  schema: T,
): { flags: z.infer<T>; positionals: string[] } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `${command}: ${(cause as Error).message}`,
      cause,
    });
  }
  const result = schema.safeParse(parsed.values);
  if (!result.success) {
    const issue = result.error.issues[0];
    const flag = issue?.path.map(String).join(".") ?? "";
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `${command}: --${kebab(flag)}: ${issue?.message ?? "invalid"}`,
    });
  }
  return { flags: result.data, positionals: parsed.positionals };
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** A logger for a command: JSON lines on stderr, level from `TOLLGATE_LOG_LEVEL` (default info). */
export function createCliLogger(level = process.env.TOLLGATE_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: undefined }, pino.destination(2));
}

/** Resolves on the first SIGINT or SIGTERM. */
export function waitForShutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      resolve(signal);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

/** Writes one line to stdout. */
export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Writes one line to stderr. */
export function printError(text: string): void {
  process.stderr.write(`${text}\n`);
}
