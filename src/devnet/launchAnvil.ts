import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type Logger, silentLogger, TollgateError } from "../errors/index.js";

export type LaunchAnvilParameters = {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  chainId?: number;
  /** Seconds between blocks; undefined mines a block per transaction. */
  blockTimeSeconds?: number;
  logger?: Logger;
  /** Milliseconds to wait for the RPC to answer. */
  startTimeoutMs?: number;
};

export type LaunchAnvilReturnType = {
  rpcUrl: string;
  port: number;
  process: ChildProcess;
  /** Stops anvil and resolves once it has exited. */
  stop(): Promise<void>;
};

/**
 * `sh -c` script: runs anvil ($0 with its arguments) in the background; when stdin (a pipe from the
 * launching process) closes — `stop()`, or that process ended however it ended — asks anvil to stop
 * and kills it 3 s later if it has not; exits with anvil's status once anvil has exited.
 */
const ANVIL_WATCHDOG = [
  'exec 3<&0; "$0" "$@" & anvil=$!',
  '(read -r _ <&3; kill "$anvil" 2>/dev/null; sleep 3 </dev/null >/dev/null 2>&1 3<&-; kill -9 "$anvil" 2>/dev/null) & watchdog=$!',
  'wait "$anvil"; status=$?; kill "$watchdog" 2>/dev/null; exit "$status"',
].join("\n");

/** Path of the anvil binary shipped by the `@foundry-rs/anvil` platform package. */
export function anvilBinaryPath(): string {
  const require = createRequire(import.meta.url);
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  const platformPackage = `@foundry-rs/anvil-${process.platform}-${arch}`;
  try {
    const manifest = require.resolve(`${platformPackage}/package.json`);
    return join(dirname(manifest), "bin", process.platform === "win32" ? "anvil.exe" : "anvil");
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_DEVNET_FAILED",
      shortMessage: `anvil is not installed for ${process.platform}/${process.arch} (${platformPackage})`,
      cause,
    });
  }
}

/**
 * Starts anvil on loopback and resolves once its JSON-RPC answers.
 * With port 0 anvil picks a free port; either way the port is read back from its banner, so another
 * node already listening on a fixed port is never taken for this one (anvil fails to bind, and says so).
 */
export async function launchAnvil({
  host = "127.0.0.1",
  port = 0,
  chainId = 31337,
  blockTimeSeconds,
  logger = silentLogger,
  startTimeoutMs = 15_000,
}: LaunchAnvilParameters = {}): Promise<LaunchAnvilReturnType> {
  // Not --silent: anvil's banner ("Listening on host:port") is how it says it holds its port. Waiting for an
  // RPC answer instead would take another node already on a fixed port for this one.
  const args = ["--host", host, "--port", String(port), "--chain-id", String(chainId)];
  if (blockTimeSeconds !== undefined) args.push("--block-time", String(blockTimeSeconds));
  // Off Windows anvil runs in a process group of its own, under a shell that holds a pipe from this
  // process: Ctrl-C in a terminal (SIGINT to the foreground group) then reaches the gateway alone,
  // which still has a chain for its shutdown claims, and anvil stops when this process ends, however it
  // ends (the pipe closes). The shell exits when anvil does, with its status.
  const grouped = process.platform !== "win32";
  const child = grouped
    ? spawn("/bin/sh", ["-c", ANVIL_WATCHDOG, anvilBinaryPath(), ...args], {
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      })
    : spawn(anvilBinaryPath(), args, { stdio: ["ignore", "pipe", "pipe"] });
  const signal = (name: NodeJS.Signals) => {
    // A group whose leader has exited may be gone, and its number reused.
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      if (grouped && child.pid !== undefined) process.kill(-child.pid, name);
      else child.kill(name);
    } catch {
      // Already gone.
    }
  };
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once("exit", () => {
      exited = true;
      resolve();
    });
  });

  // Until anvil answers, its exit is a failure to start (a port taken, a missing binary): told at once.
  let starting = true;
  const boundPort = await new Promise<number>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(
      () => fail(new Error(`anvil did not start within ${startTimeoutMs} ms`)),
      startTimeoutMs,
    );
    const fail = (cause: unknown) => {
      clearTimeout(timer);
      signal("SIGKILL");
      reject(
        new TollgateError({
          code: "TOLLGATE_DEVNET_FAILED",
          shortMessage: /address already in use|address in use/i.test(output)
            ? `port ${port} on ${host} is taken by another process; stop it or choose another port`
            : "anvil failed to start",
          details: { output: output.slice(-2000) },
          cause,
        }),
      );
    };
    const onData = (data: Buffer) => {
      output += data.toString();
      const match = /Listening on (?:\[[^\]]+\]|[^\s:]+):(\d+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (data: Buffer) => {
      output += data.toString();
    });
    child.once("error", fail);
    child.once("exit", (code) => {
      if (starting) fail(new Error(`anvil exited with code ${code}`));
    });
  });
  child.stdout?.removeAllListeners("data");
  child.stdout?.resume();
  child.stderr?.resume();
  const rpcUrl = `http://${host.includes(":") ? `[${host}]` : host}:${boundPort}`;
  await waitForRpc(rpcUrl, startTimeoutMs);
  starting = false;
  if (exited)
    throw new TollgateError({
      code: "TOLLGATE_DEVNET_FAILED",
      shortMessage: `anvil exited while starting (is port ${boundPort} taken?)`,
    });
  logger.debug({ rpcUrl, pid: child.pid }, "anvil started");

  return {
    rpcUrl,
    port: boundPort,
    process: child,
    async stop() {
      if (exited || child.exitCode !== null) return;
      // Grouped, the watchdog stops anvil when its pipe closes, and exits once anvil has exited.
      if (grouped) child.stdin?.destroy();
      else signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), grouped ? 5_000 : 3_000);
      await exitPromise;
      clearTimeout(timer);
    },
  };
}

async function waitForRpc(rpcUrl: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (response.ok) return;
      lastError = new Error(`HTTP ${response.status}`);
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw lastError ?? new Error("RPC did not answer");
}
