import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

/** A bench helper process (backend or serving stack) started with tsx, and what it reported when ready. */
export type BenchChild<Ready> = {
  ready: Ready;
  pid: number;
  /** Sends one line to the child's stdin (see `serveUntilStdinEnds`' `onLine`). */
  send(line: string): void;
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
  const ready = await readFirstLine(child, readyTimeoutMs);
  return {
    ready: JSON.parse(ready) as Ready,
    pid: child.pid ?? -1,
    send(line) {
      child.stdin?.write(`${line}\n`);
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

function readFirstLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`bench child did not report ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (data: Buffer) => {
      buffered += data.toString("utf8");
      const newline = buffered.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      // Keep draining so a chatty child never blocks on a full pipe.
      child.stdout?.resume();
      resolve(buffered.slice(0, newline));
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`bench child exited with code ${code} before it was ready`));
    });
  });
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
