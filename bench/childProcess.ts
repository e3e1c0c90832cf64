import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

/** A bench helper process (backend or serving stack) started with tsx, and what it reported when ready. */
export type BenchChild<Ready> = {
  ready: Ready;
  pid: number;
  /** Sends one line to the child's stdin (see `serveUntilStdinEnds`' `onLine`). */
  send(line: string): void;
  /** Sends one line and resolves with the next line the child prints (one request at a time). */
  ask(line: string): Promise<string>;
  /** Asks the child to close (stdin end), waits for it to exit (bounded), kills it after the grace period. */
  stop(): Promise<void>;
};

export type StartBenchChildParameters = {
  /** Script path relative to this folder, e.g. `serveStack.ts`. */
  script: string;
  /** JSON-serialisable input, passed as the first argument. */
  input: unknown;
  /** Extra node flags, e.g. `--cpu-prof`. */
  nodeFlags?: string[];
  readyTimeoutMs?: number;
};

/**
 * Starts `bench/<script>` in its own Node process (so client and server do not share one event loop),
 * and resolves with the JSON object the child prints as its first stdout line.
 */
export async function startBenchChild<Ready>({
  script,
  input,
  nodeFlags = [],
  readyTimeoutMs = 60_000,
}: StartBenchChildParameters): Promise<BenchChild<Ready>> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  const child = spawn(process.execPath, [...nodeFlags, "--import", "tsx", path, JSON.stringify(input)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = readLines(child);
  const ready = await withTimeout(lines.next(), readyTimeoutMs, () => {
    child.kill("SIGKILL");
    return new Error(`bench child did not report ready within ${readyTimeoutMs} ms`);
  });
  return {
    ready: JSON.parse(ready) as Ready,
    pid: child.pid ?? -1,
    send(line) {
      child.stdin?.write(`${line}\n`);
    },
    ask(line) {
      const answer = lines.next();
      child.stdin?.write(`${line}\n`);
      return answer;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.stdin?.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The child's stdout as lines, handed out in order; the stream keeps draining so a pipe never fills. */
function readLines(child: ChildProcess): { next(): Promise<string> } {
  const ready: string[] = [];
  const waiting: Array<{ resolve: (line: string) => void; reject: (error: Error) => void }> = [];
  let ended: Error | undefined;
  let buffered = "";
  child.stdout?.on("data", (data: Buffer) => {
    buffered += data.toString("utf8");
    for (let newline = buffered.indexOf("\n"); newline >= 0; newline = buffered.indexOf("\n")) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      const waiter = waiting.shift();
      if (waiter) waiter.resolve(line);
      else ready.push(line);
    }
  });
  child.once("exit", (code) => {
    ended = new Error(`bench child exited with code ${code}`);
    for (const waiter of waiting.splice(0)) waiter.reject(ended);
  });
  return {
    next() {
      const line = ready.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (ended) return Promise.reject(ended);
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * For the child side: prints `ready` as one JSON line, hands each stdin line to `onLine`, then runs
 * `close` when the parent ends stdin (or on SIGTERM/SIGINT), and exits.
 */
export function serveUntilStdinEnds(
  ready: unknown,
  close: () => Promise<void>,
  onLine: (line: string) => void = () => {},
): void {
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  let pending = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (data: string) => {
    pending += data;
    for (let newline = pending.indexOf("\n"); newline >= 0; newline = pending.indexOf("\n")) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
  });
  let closing = false;
  const shutdown = () => {
    if (closing) return;
    closing = true;
    close().then(
      () => process.exit(0),
      (error) => {
        process.stderr.write(`bench child: close failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.stdin.on("end", shutdown);
  process.stdin.resume();
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}
