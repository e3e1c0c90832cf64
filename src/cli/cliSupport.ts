import { type ParseArgsConfig, parseArgs } from "node:util";
import { pino } from "pino";
import { prettyFactory } from "pino-pretty";
import type { z } from "zod";
import { closestName, type Logger, TollgateError } from "../errors/index.js";

/** Exit codes shared by every command; documented in the README. */
export const exitCodes = {
  ok: 0,
  usage: 2,
  failure: 1,
  policyRefused: 3,
  paymentFailed: 4,
  httpError: 5,
} as const;

/** Parses `argv` against `options` and validates the result with `schema`; every failure says what to type instead. */
export function parseFlags<T extends z.ZodType>(
  command: string,
  argv: string[],
  options: NonNullable<ParseArgsConfig["options"]>,
  schema: T,
  { positionals: allowPositionals = false }: { positionals?: boolean } = {},
): { flags: z.infer<T>; positionals: string[] } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (cause) {
    throw usageError(
      `${command}: ${explainParseError(cause as Error & { code?: string }, Object.keys(options))}`,
    );
  }
  if (!allowPositionals && parsed.positionals.length > 0) {
    throw usageError(
      `${command}: unexpected argument ${JSON.stringify(parsed.positionals[0])} (every value follows its flag, e.g. --port 4021)`,
    );
  }
  const result = schema.safeParse(parsed.values);
  if (!result.success) {
    const values = parsed.values as Record<string, unknown>;
    const problems = result.error.issues.map((issue) => explainFlagIssue(issue, values));
    throw usageError(`${command}: ${[...new Set(problems)].join("; ")}`);
  }
  return { flags: result.data, positionals: parsed.positionals };
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

function usageError(message: string): TollgateError {
  return new TollgateError({ code: "TOLLGATE_CONFIG_INVALID", shortMessage: message });
}

function explainParseError(error: Error & { code?: string }, known: string[]): string {
  const flag = /'(-{1,2}[^' ]+)/.exec(error.message)?.[1];
  if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag) {
    const closest = closestName(flag.replace(/^-+/, ""), known);
    return closest
      ? `unknown flag ${flag}; did you mean --${closest}?`
      : `unknown flag ${flag}; the flags are ${known.map((name) => `--${name}`).join(", ")}`;
  }
  if (error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag) {
    return /argument missing/.test(error.message) ? `${flag} needs a value` : `${flag} takes no value`;
  }
  return error.message;
}

function explainFlagIssue(issue: z.core.$ZodIssue, values: Record<string, unknown>): string {
  const key = issue.path.map(String)[0] ?? "";
  const flag = `--${kebab(key)}`;
  const given = values[key] ?? values[kebab(key)];
  if (given === undefined)
    return issue.message.startsWith("Invalid input")
      ? `${flag} is required`
      : `${flag} is required: ${issue.message}`;
  const shown = JSON.stringify(Array.isArray(given) ? given[Number(issue.path[1] ?? 0)] : given);
  switch (issue.code) {
    case "invalid_format":
      return issue.format === "url"
        ? `${flag} must be a URL such as http://127.0.0.1:4021, not ${shown}`
        : `${flag}: ${issue.message}`;
    case "invalid_type":
      return issue.expected === "number" || issue.expected === "int" || issue.expected === "bigint"
        ? `${flag} must be a number, not ${shown}`
        : `${flag}: ${issue.message}`;
    case "too_small":
      return issue.message.startsWith("Too small")
        ? `${flag} must be at least ${String(issue.minimum)}, not ${shown}`
        : `${flag}: ${issue.message}`;
    case "too_big":
      return issue.message.startsWith("Too big")
        ? `${flag} must be at most ${String(issue.maximum)}, not ${shown}`
        : `${flag}: ${issue.message}`;
    default:
      return `${flag}: ${issue.message}`;
  }
}

export type CliLoggerOptions = {
  /**
   * One readable line per event (level, message, fields) instead of JSON: default when stderr is a
   * terminal and `TOLLGATE_LOG_FORMAT` is not `json`. Piped or redirected, the lines are JSON for machines.
   */
  readable?: boolean;
  /** Where the lines go; default stderr. */
  destination?: NodeJS.WritableStream;
};

/** The commands' logger at `level` (default `TOLLGATE_LOG_LEVEL`, else info), on stderr. */
export function createCliLogger(
  level = process.env.TOLLGATE_LOG_LEVEL ?? "info",
  {
    readable = process.stderr.isTTY === true && process.env.TOLLGATE_LOG_FORMAT !== "json",
    destination,
  }: CliLoggerOptions = {},
): Logger {
  // A JSON line escapes the C0 control characters of words from outside, not C1 (U+009B is CSI) nor DEL.
  const options = { level, base: undefined, hooks: { streamWrite: escapeC1Controls } };
  if (!readable) return pino(options, destination ?? pino.destination(2));
  const prettify = prettyFactory({
    colorize: destination === undefined,
    translateTime: "HH:MM:ss",
    singleLine: true,
    // One event, one line: the message's control characters written out, a line break included.
    messageFormat: (log, messageKey) => printable(String(log[messageKey] ?? "")),
  });
  const out = destination ?? pino.destination({ dest: 2, sync: true });
  // Fields are written as JSON (C0 escaped); the colors are C0 escapes of our own: C1 and DEL are written out after.
  return pino(options, { write: (line: string) => out.write(escapeC1Controls(prettify(line))) });
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

/** C0 and C1 control characters and DEL: what a terminal may read as a command (an escape sequence, a line break). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is matched
const controlCharacters = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * Text that came from outside (a buyer's, a seller's, a tool's error) made safe to print on a terminal:
 * its control characters are written out, e.g. `\u001b`.
 */
export function printable(text: string): string {
  return text.replace(controlCharacters, escapeControl);
}

function escapeControl(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/** C1 control characters and DEL, which `JSON.stringify` leaves as they are (it escapes C0 only). */
const c1Controls = /[\u007f-\u009f]/g;

/**
 * JSON (or text whose C0 controls are already written out) with its C1 control characters and DEL
 * written out too, e.g. `\u009b`: no terminal showing it reads CSI. In JSON text these occur only
 * inside strings, where the escape is valid JSON and parses back to the same character.
 */
export function escapeC1Controls(text: string): string {
  return text.replace(c1Controls, escapeControl);
}

/** Writes one line to stdout. */
export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Control characters but the line break and the tab, which this CLI's own messages use. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is matched
const controlsButLines = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/**
 * Writes one line to stderr. Errors carry words from outside (a seller's error, a listing's model
 * name): their control characters are written out, e.g. `\u001b`, so none retitles or clears the
 * terminal; line breaks and tabs are kept.
 */
export function printError(text: string): void {
  process.stderr.write(`${printableLines(text)}\n`);
}

/** Lines of this CLI's own holding words from outside: `printable`, but line breaks and tabs are kept. */
export function printableLines(text: string): string {
  return text.replace(controlsButLines, escapeControl);
}
