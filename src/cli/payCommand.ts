import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline/promises";
import { z } from "zod";
import { explainHttpFailure } from "../buyer/explainHttpFailure.js";
import {
  type BuyerEvent,
  type ConfirmPayment,
  createPayingFetch,
  defaultDataDir,
  describeFetchFailure,
  formatReceiptLine,
  openSpendStore,
  type PayingFetch,
  parseSpendingPolicy,
  parseSpendingPolicyYaml,
  type SpendingPolicy,
} from "../buyer/index.js";
import { isTollgateError, TollgateError } from "../errors/index.js";
import { formatMoney } from "../pricing/index.js";
import { escapeC1Controls, exitCodes, parseFlags, printError, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { readPrivateKey } from "./readPrivateKey.js";

const flagsSchema = z.object({
  url: z.url(),
  method: z.string().optional(),
  body: z.string().optional(),
  header: z.array(z.string()).default([]),
  policy: z.string().optional(),
  "private-key": z.string().optional(),
  rpc: z.url().optional(),
  json: z.boolean().default(false),
});

/** `tollgate pay`: one paid HTTP request. */
export async function payCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags("pay", argv, commandFlags.pay, flagsSchema);
  const body = flags.body === undefined ? undefined : await readBody(flags.body);
  const headers = new Headers();
  for (const header of flags.header) {
    const colon = header.indexOf(":");
    if (colon <= 0) throw configError(`--header ${JSON.stringify(header)}: expected Name: value`);
    headers.append(header.slice(0, colon).trim(), header.slice(colon + 1).trim());
  }
  if (body !== undefined && !headers.has("content-type") && looksLikeJson(body)) {
    headers.set("content-type", "application/json");
  }
  const session = await openBuyerSession(flags);
  try {
    const response = await session.payingFetch(flags.url, {
      method: flags.method?.toUpperCase() ?? (body === undefined ? "GET" : "POST"),
      headers,
      body,
    });
    if (!response.ok) {
      const text = await response.text();
      await session.payingFetch.idle();
      const failure = await explainHttpFailure({
        status: response.status,
        headers: response.headers,
        body: text,
        payer: session.payingFetch.address,
        rpcUrl: flags.rpc,
      });
      if (flags.json) {
        printLine(
          jsonLine({
            status: response.status,
            body: parseMaybeJson(text),
            payment: null,
            error: { reason: failure.reason ?? null, message: failure.message },
          }),
        );
      } else {
        // A seller's error body is still the answer (stdout); a refused payment's is its offer again.
        if (response.status !== 402 && text) process.stdout.write(endWithNewline(text));
        printError(`tollgate pay: ${failure.statusLine}: ${failure.message}`);
      }
      return exitCodeOfStatus(response.status);
    }
    let text: string | undefined;
    if (flags.json) text = await response.text();
    else if (response.body) await writeBody(response.body, response.headers.get("content-type"));
    await session.payingFetch.idle();
    const receipt = session.lastReceipt();
    if (flags.json) {
      const payment = await paymentWithSignedReceipts(session.payingFetch, receipt);
      printLine(jsonLine({ status: response.status, body: parseMaybeJson(text), payment }));
    } else if (receipt) printError(formatReceiptLine(receipt));
    return exitCodes.ok;
  } catch (error) {
    return reportBuyerError("pay", error, flags.json);
  } finally {
    await session.payingFetch.close();
  }
}

/**
 * Streams a body to stdout as it arrives. A text body ends with a newline, as every other output
 * does (the shell's prompt then starts on its own line); a binary one is written exactly as it came.
 */
async function writeBody(body: ReadableStream<Uint8Array>, contentType: string | null): Promise<void> {
  let lastByte: number | undefined;
  for await (const chunk of body) {
    if (chunk.byteLength > 0) lastByte = chunk[chunk.byteLength - 1];
    process.stdout.write(chunk);
  }
  if (lastByte !== undefined && lastByte !== NEWLINE && isTextType(contentType)) process.stdout.write("\n");
}

const NEWLINE = 0x0a;

/** Text, or no type said: JSON, XML, an event stream, form data, JavaScript, any `text/`. */
function isTextType(contentType: string | null): boolean {
  return (
    contentType === null ||
    /^\s*(text\/|[^;]*[/+](json|xml)\b|[^;]*\/(javascript|x-www-form-urlencoded)\b)/i.test(contentType)
  );
}

function endWithNewline(text: string): string {
  return text.endsWith("\n") ? text : `${text}\n`;
}

/**
 * A receipt as `--json` prints it: with the seller's signed receipts in full, as kept with the spend
 * row, so that `tollgate receipts verify` reads the output as it is.
 */
export async function paymentWithSignedReceipts(
  payingFetch: PayingFetch,
  receipt: ReceiptEvent | undefined,
): Promise<Record<string, unknown> | null> {
  if (!receipt) return null;
  const kept = await (await payingFetch.spendStore()).reservation(receipt.paymentId);
  return { ...receipt, signedReceipts: kept?.signedReceipts ?? receipt.signedReceipts };
}

/** A paying fetch configured from flags and the environment, with its events turned into CLI output. */
export async function openBuyerSession(flags: {
  policy?: string | undefined;
  "private-key"?: string | undefined;
  rpc?: string | undefined;
  json?: boolean;
}): Promise<{
  payingFetch: PayingFetch;
  policy: SpendingPolicy | undefined;
  lastReceipt(): ReceiptEvent | undefined;
}> {
  const privateKey = readPrivateKey(
    flags["private-key"] ?? process.env.TOLLGATE_PRIVATE_KEY,
    flags["private-key"] === undefined
      ? "--private-key or the variable TOLLGATE_PRIVATE_KEY"
      : "--private-key",
  );
  const policy = await loadPolicy(flags.policy ?? process.env.TOLLGATE_POLICY);
  let lastReceipt: ReceiptEvent | undefined;
  const onEvent = (event: BuyerEvent) => {
    if (event.type === "receipt") lastReceipt = event;
    if (event.type === "overcharge") {
      printError(
        `warning: ${event.origin} overcharged (${event.reason}): charged ${formatMoney(event.chargedAtomic)}, the usage justifies ${
          event.justifiedAtomic === undefined ? "?" : formatMoney(event.justifiedAtomic)
        } (signed maximum ${formatMoney(event.maxAtomic)}); recorded as dispute #${event.disputeId}`,
      );
    }
  };
  // With DATABASE_URL the spend store is PostgreSQL, shared by every process of this buyer.
  const sharedStore = process.env.DATABASE_URL ? await openCliSpendStore() : undefined;
  const payingFetch = createPayingFetch({
    privateKey,
    policy,
    rpcUrl: flags.rpc,
    ...(sharedStore ? { store: sharedStore } : { dataDir: cliDataDir() }),
    onEvent,
    confirm: terminalConfirm(),
  });
  if (sharedStore) {
    const closeFetch = payingFetch.close.bind(payingFetch);
    payingFetch.close = async () => {
      await closeFetch();
      await sharedStore.close();
    };
  }
  return { payingFetch, policy, lastReceipt: () => lastReceipt };
}

type ReceiptEvent = Extract<BuyerEvent, { type: "receipt" }>;

/** The buyer's spend store as the CLI opens it: PostgreSQL when DATABASE_URL is set, else PGlite in cliDataDir(). */
export function openCliSpendStore() {
  const connectionString = process.env.DATABASE_URL;
  return connectionString ? openSpendStore({ connectionString }) : openSpendStore({ dataDir: cliDataDir() });
}

/** Where the CLI keeps the buyer's state: TOLLGATE_DATA_DIR, or ~/.tollgate. */
export function cliDataDir(): string {
  return process.env.TOLLGATE_DATA_DIR || defaultDataDir();
}

/**
 * The caps the CLI pays under when no policy file is named: an agent steered by what it reads, or a
 * forgotten flag, must not sign whatever a seller asks.
 */
export const DEFAULT_CLI_POLICY = { perCall: "$0.10", daily: "$1.00", maxDeposit: "$1.00" } as const;

/** Reads and validates a policy file; without one, the default caps (`DEFAULT_CLI_POLICY`), said on stderr. */
export async function loadPolicy(path: string | undefined): Promise<SpendingPolicy> {
  if (!path) {
    printError(
      `no spending policy (--policy FILE or TOLLGATE_POLICY): the defaults apply, perCall ${DEFAULT_CLI_POLICY.perCall}, daily ${DEFAULT_CLI_POLICY.daily}, maxDeposit ${DEFAULT_CLI_POLICY.maxDeposit}`,
    );
    return parseSpendingPolicy(DEFAULT_CLI_POLICY);
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `cannot read policy file ${path}`,
      cause,
    });
  }
  return parseSpendingPolicyYaml(text);
}

/** A y/N prompt on the terminal for `confirmAbove`; none without one (such payments are then refused). */
function terminalConfirm(): ConfirmPayment | undefined {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return undefined;
  return async (request) => {
    const prompt = createInterface({ input: process.stdin, output: process.stderr });
    try {
      const expected =
        request.expectedAtomic === undefined
          ? ""
          : ` (expected at most ${formatMoney(request.expectedAtomic)})`;
      const answer = await prompt.question(
        `Authorize up to ${formatMoney(request.maxAtomic)}${expected}${request.depositAtomic !== undefined ? `, with a channel deposit of ${formatMoney(request.depositAtomic)} (refundable)` : ""}${request.authorizedAtomic !== undefined ? `, besides ${formatMoney(request.authorizedAtomic)} already authorized for this request` : ""} to ${request.origin}, paid to ${request.payTo} on ${request.network}? [y/N] `,
      );
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      prompt.close();
    }
  };
}

/** The exit code of a paid request's final HTTP status. */
export function exitCodeOfStatus(status: number): number {
  if (status >= 200 && status < 300) return exitCodes.ok;
  if (status === 402) return exitCodes.paymentFailed;
  return exitCodes.httpError;
}

/**
 * Prints a buyer failure and answers its exit code (policy refusal 3, payment failure 4, other 1); with
 * `json`, one JSON line on stdout (`status` null: no answer was taken) instead of a sentence on stderr.
 */
export function reportBuyerError(command: string, error: unknown, json = false): number {
  if (isTollgateError(error, "TOLLGATE_CONFIG_INVALID")) throw error;
  let code: number = exitCodes.failure;
  let message = isTollgateError(error) ? error.shortMessage : (error as Error).message;
  if (isTollgateError(error, "TOLLGATE_POLICY_REFUSED")) {
    code = exitCodes.policyRefused;
    message = `refused by policy (${String(error.details.rule)}): ${error.shortMessage}`;
  } else if (
    isTollgateError(error, "TOLLGATE_PAYMENT_REQUIRED") ||
    isTollgateError(error, "TOLLGATE_PAYMENT_INVALID")
  ) {
    code = exitCodes.paymentFailed;
    message = `payment failed: ${error.shortMessage}`;
  } else {
    const unanswered = describeFetchFailure(error);
    const cause = (error as { cause?: { message?: unknown } }).cause?.message;
    if (unanswered) message = unanswered;
    else if (typeof cause === "string") message += ` (${cause})`;
  }
  if (json) {
    printLine(
      jsonLine({
        status: null,
        body: null,
        payment: null,
        error: {
          code: isTollgateError(error) ? error.code : null,
          message,
          ...(isTollgateError(error, "TOLLGATE_POLICY_REFUSED") ? { details: error.details } : {}),
        },
      }),
    );
  } else printError(`tollgate ${command}: ${message}`);
  return code;
}

/** JSON with bigints written as decimal strings, and C1 control characters escaped as C0 are. */
export function jsonLine(value: unknown): string {
  return escapeC1Controls(
    JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? item.toString() : item)),
  );
}

function configError(message: string): TollgateError {
  return new TollgateError({ code: "TOLLGATE_CONFIG_INVALID", shortMessage: message });
}

async function readBody(value: string): Promise<string> {
  if (!value.startsWith("@")) return value;
  try {
    return await readFile(value.slice(1), "utf8");
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `--body: cannot read ${value.slice(1)}`,
      cause,
    });
  }
}

function looksLikeJson(text: string): boolean {
  return /^\s*[[{]/.test(text);
}

function parseMaybeJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
