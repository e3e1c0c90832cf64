import { randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync } from "node:fs";
import { open, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { HTTP_STATUS_OF, isTollgateError, TollgateError, type TollgateErrorCode } from "../errors/index.js";
import { isRunning, type Ledger, type PaymentLedger, processPlace } from "../ledger/index.js";
import { type ChannelsReport, readChannelsReport } from "./channelsReport.js";

/** Where `tollgate dev` and `tollgate gateway` keep the ledger, and `tollgate ledger` reads it, by default. */
export const DEFAULT_LEDGER_DIR = ".tollgate/ledger";

/** Where a gateway that holds a PGlite ledger says how to read it: beside the data dir, readable by its user only. */
export function ledgerAccessFile(dataDir: string): string {
  return `${resolve(dataDir)}.gateway.json`;
}

/** A gateway's record: its process id and where that id means something (host, container), how to read the ledger. */
type AccessRecord = { pid: number; place?: string; url?: string; token?: string };

/** A record written in another host or container: its id and its loopback address mean nothing here. */
const elsewhere = (record: AccessRecord) => record.place !== undefined && record.place !== processPlace();

/** The ledger report `tollgate ledger --json` prints, read the same way from the file or through a gateway. */
export type LedgerReport = {
  totals: Array<{
    model: string;
    count: number;
    authorizedAtomic: string;
    chargedAtomic: string;
    owedAtomic: string;
    byStatus: Record<string, number>;
  }>;
  recent: Array<{
    id: number | string;
    createdAt: string;
    model: string;
    payer: string;
    status: string;
    maxAtomic: string;
    chargeAtomic: string | null;
    promptTokens: number | null;
    completionTokens: number | null;
    /** Usage per unit (`input_tokens`, `output_tokens`, `images`, …), when the row has it. */
    usage: Record<string, number> | null;
    transaction: string | null;
    error: string | null;
  }>;
};

/** Recent payments and totals per model, in plain JSON. */
export async function readLedgerReport(payments: PaymentLedger, limit: number): Promise<LedgerReport> {
  const [recent, totals] = await Promise.all([payments.recent({ limit }), payments.totals()]);
  return {
    totals: totals.map((t) => ({
      model: t.model,
      count: t.count,
      authorizedAtomic: t.authorizedAtomic.toString(),
      chargedAtomic: t.chargedAtomic.toString(),
      owedAtomic: t.owedAtomic.toString(),
      byStatus: t.byStatus,
    })),
    recent: recent.map((p) => ({
      id: p.id,
      createdAt: p.createdAt.toISOString(),
      model: p.model,
      payer: p.payer,
      status: p.status,
      maxAtomic: p.maxAtomic.toString(),
      chargeAtomic: p.chargeAtomic?.toString() ?? null,
      promptTokens: p.promptTokens,
      completionTokens: p.completionTokens,
      usage: p.usage,
      transaction: p.transaction,
      error: p.error,
    })),
  };
}

/** The running process that holds `dataDir`, if any (a record left by a stopped one does not count). */
export async function ledgerHolder(dataDir: string): Promise<AccessRecord | undefined> {
  const text = await readFile(ledgerAccessFile(dataDir), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  let record: AccessRecord;
  try {
    record = JSON.parse(text) as AccessRecord;
  } catch {
    return undefined;
  }
  return Number.isInteger(record.pid) && !elsewhere(record) && isRunning(record.pid) ? record : undefined;
}

/** The access record at `path`, or undefined when there is none (or it is not one). */
async function readRecord(path: string): Promise<AccessRecord | undefined> {
  const text = await readFile(path, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const record = JSON.parse(text) as AccessRecord;
    return Number.isInteger(record.pid) ? record : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the access record at `path` names this process (of this host and container). */
async function ownRecord(path: string): Promise<boolean> {
  const record = await readRecord(path);
  return record !== undefined && record.pid === process.pid && !elsewhere(record);
}

/**
 * Claims a PGlite data dir for this gateway process before it opens it (PGlite is one process's database):
 * refused while another running gateway holds it. Resolves to the claim, which later serves the ledger.
 */
export async function claimLedgerDir(dataDir: string): Promise<LedgerClaim> {
  const path = ledgerAccessFile(dataDir);
  const holder = await ledgerHolder(dataDir);
  if (holder && holder.pid !== process.pid) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `the ledger in ${dataDir} is held by a running gateway (process ${holder.pid}); stop it, or give this one another data dir`,
      details: { dataDir, pid: holder.pid },
    });
  }
  const existing = await readRecord(path);
  // A record of another host or container is left as it is: whether its gateway still holds the ledger,
  // the ledger's lock decides when this one opens it, and `serve` (once the ledger is this process's)
  // writes over it. Otherwise only a record left by a stopped process (or this one) goes: one another
  // process is writing now is not removed (its exclusive creation below then refuses this one).
  if (existing === undefined || !elsewhere(existing)) {
    if (existing && (existing.pid === process.pid || !isRunning(existing.pid)))
      await rm(path, { force: true });
    // Created exclusively and readable by this user only: it will hold the token that reads the ledger.
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, "wx", 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      throw new TollgateError({
        code: "TOLLGATE_CONFIG_INVALID",
        shortMessage: `the ledger in ${dataDir} is being claimed by another gateway starting now; stop it, or give this one another data dir`,
        details: { dataDir },
      });
    }
    await handle.writeFile(
      JSON.stringify({ pid: process.pid, place: processPlace() } satisfies AccessRecord),
    );
    await handle.close();
  }
  // Only this process's own record is removed: never one another gateway wrote since.
  let close = async () => {
    if (await ownRecord(path)) await rm(path, { force: true });
  };
  return {
    async serve({ payments, channels }, { reconcile } = {}) {
      const token = randomBytes(32).toString("hex");
      const server = createServer((request, response) => {
        const url = new URL(request.url ?? "/", "http://127.0.0.1");
        const given = Buffer.from(request.headers.authorization ?? "");
        const expected = Buffer.from(`Bearer ${token}`);
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          response.writeHead(401, { "content-type": "application/json" });
          response.end(JSON.stringify({ error: "a valid bearer token is required" }));
          return;
        }
        const read =
          request.method !== "GET"
            ? undefined
            : url.pathname === "/ledger"
              ? () =>
                  readLedgerReport(
                    payments,
                    Math.min(1000, Math.max(1, Number(url.searchParams.get("limit")) || 20)),
                  )
              : url.pathname === "/channels"
                ? () => readChannelsReport(channels)
                : url.pathname === "/reconcile" && reconcile
                  ? () => reconcile(rangeOf(url.searchParams))
                  : undefined;
        if (!read) {
          response.writeHead(404).end();
          return;
        }
        read().then(
          (report) => {
            response.writeHead(200, { "content-type": "application/json" });
            response.end(JSON.stringify(report));
          },
          (error: unknown) => {
            // A Tollgate error keeps its code and words for the command that asked.
            const said = isTollgateError(error)
              ? { error: error.shortMessage, code: error.code }
              : { error: String(error) };
            response.writeHead(503, { "content-type": "application/json" });
            response.end(JSON.stringify(said));
          },
        );
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const { port } = server.address() as AddressInfo;
      await writeFile(
        path,
        JSON.stringify({
          pid: process.pid,
          place: processPlace(),
          url: `http://127.0.0.1:${port}`,
          token,
        } satisfies AccessRecord),
        { mode: 0o600 },
      );
      const release = close;
      close = async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await release();
      };
    },
    release: () => close(),
  };
}

/** The blocks `tollgate reconcile` compares, and the RPC it names with `--rpc`. */
export type ReconcileQuery = { fromBlock: bigint; toBlock?: bigint | undefined; rpcUrl?: string | undefined };

const rangeOf = (params: URLSearchParams): ReconcileQuery => {
  const block = (name: string) => {
    const value = params.get(name);
    return value !== null && /^\d+$/.test(value) ? BigInt(value) : undefined;
  };
  return {
    fromBlock: block("fromBlock") ?? 0n,
    toBlock: block("toBlock"),
    rpcUrl: params.get("rpc") ?? undefined,
  };
};

/** A gateway's hold on its PGlite data dir. */
export type LedgerClaim = {
  /**
   * Serves the ledger's and the channels' reports on loopback to whoever can read the access file, and
   * with `reconcile` the ledger reconciled with the chain (`tollgate reconcile`).
   */
  serve(
    ledger: Pick<Ledger, "payments" | "channels">,
    options?: { reconcile?: (query: ReconcileQuery) => Promise<unknown> },
  ): Promise<void>;
  /** Stops serving and removes the access file. */
  release(): Promise<void>;
};

/** Reads the ledger's report through the running gateway that holds `dataDir`; undefined when none holds it. */
export const readLedgerThroughGateway = (dataDir: string, limit: number): Promise<LedgerReport | undefined> =>
  readThroughGateway<LedgerReport>(dataDir, `/ledger?limit=${limit}`);

/** Reads the channels' report through the running gateway that holds `dataDir`; undefined when none holds it. */
export const readChannelsThroughGateway = (dataDir: string): Promise<ChannelsReport | undefined> =>
  readThroughGateway<ChannelsReport>(dataDir, "/channels");

/** The ledger reconciled by the running gateway that holds `dataDir`, with its config; undefined when none holds it. */
export const reconcileThroughGateway = <Report>(
  dataDir: string,
  { fromBlock, toBlock, rpcUrl }: ReconcileQuery,
): Promise<Report | undefined> => {
  const query = new URLSearchParams({ fromBlock: fromBlock.toString() });
  if (toBlock !== undefined) query.set("toBlock", toBlock.toString());
  if (rpcUrl !== undefined) query.set("rpc", rpcUrl);
  return readThroughGateway<Report>(dataDir, `/reconcile?${query}`);
};

async function readThroughGateway<Report>(dataDir: string, path: string): Promise<Report | undefined> {
  const holder = await ledgerHolder(dataDir);
  if (!holder) return undefined;
  if (!holder.url || !holder.token) {
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `the gateway holding ${dataDir} (process ${holder.pid}) is still starting; retry in a moment`,
    });
  }
  const response = await fetch(`${holder.url}${path}`, {
    headers: { authorization: `Bearer ${holder.token}` },
  }).catch((cause: unknown) => {
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `the gateway holding ${dataDir} (process ${holder.pid}) did not answer at ${holder.url}`,
      cause,
    });
  });
  if (!response.ok) {
    const said = (await response.json().catch(() => ({}))) as { error?: string; code?: string };
    if (said.code && said.error && Object.hasOwn(HTTP_STATUS_OF, said.code))
      throw new TollgateError({ code: said.code as TollgateErrorCode, shortMessage: said.error });
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `the gateway holding ${dataDir} (process ${holder.pid}) answered ${response.status}${said.error ? `: ${said.error}` : ""}`,
    });
  }
  return (await response.json()) as Report;
}

/**
 * Why a command cannot read the PGlite ledger in `dataDir` that no running gateway serves: it lives in
 * one process's memory, or none was made there yet (a reader must not make an empty one).
 */
export function unreadableLedger(dataDir: string): TollgateError | undefined {
  if (dataDir.includes("://"))
    return new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `${dataDir} is a ledger in one process's memory, which no other command can read: give the data dir of a tollgate dev or gateway that keeps its ledger on disk (the default .tollgate/ledger)`,
    });
  if (!ledgerExists(dataDir))
    return new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `no ledger in ${dataDir} yet: it is made by tollgate dev or tollgate gateway started in this folder (or give --data-dir)`,
    });
  return undefined;
}

/** True when `dataDir` holds a PGlite database already. */
export function ledgerExists(dataDir: string): boolean {
  return existsSync(resolve(dataDir, "PG_VERSION"));
}
