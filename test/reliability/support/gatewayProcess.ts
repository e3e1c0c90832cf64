import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Devnet } from "../../../src/devnet/index.js";
import type { GatewayConfigInput } from "../../../src/gateway/index.js";
import { testGatewayConfig } from "../../support/gatewayHarness.js";

export type GatewayProcess = {
  url: string;
  child: ChildProcess;
  /** Resolves when the process ends, with its exit code or the signal that ended it. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it wrote on stderr (its JSON log lines). */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it is gone. */
  stop(): Promise<void>;
};

/** Writes a gateway config for the devnet and the mock backend; the key comes from TOLLGATE_FACILITATOR_KEY. */
export async function writeGatewayConfig(
  dir: string,
  {
    devnet,
    backendUrl,
    schema,
    recovery,
    timeouts,
  }: {
    devnet: Devnet;
    backendUrl: string;
    schema: string;
    recovery?: { graceSeconds: number; settlingGraceSeconds: number; intervalSeconds: number };
    timeouts?: { verifySeconds?: number; settleSeconds: number };
  },
): Promise<string> {
  const config: GatewayConfigInput = {
    ...testGatewayConfig({ devnet, backendUrl, facilitator: { privateKeyEnv: "TOLLGATE_FACILITATOR_KEY" } }),
    ledger: { schema },
    ...(recovery ? { recovery } : {}),
    ...(timeouts ? { timeouts } : {}),
  };
  const path = join(dir, `gateway-${schema}.json`);
  // JSON is YAML: the CLI reads it as is.
  await writeFile(path, JSON.stringify(config, null, 2));
  return path;
}

/** Starts `tollgate gateway --config <path>` as a real process and resolves once it listens. */
export function startGatewayProcess(
  configPath: string,
  env: Record<string, string>,
): Promise<GatewayProcess> {
  const { payTo } = JSON.parse(readFileSync(configPath, "utf8")) as { payTo: string };
  const child = spawn(process.execPath, ["bin/tollgate.js", "gateway", "--config", configPath], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TOLLGATE_LOG_LEVEL: "warn", ...env },
  });
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => {
    stderr = (stderr + data.toString()).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`gateway did not start within 60 s: ${stderr}`));
    }, 60_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      const match = /gateway listening on (\S+)\/v1/.exec(line);
      if (!match?.[1]) return;
      clearTimeout(timer);
      // The operator sees where the money goes.
      if (!line.toLowerCase().includes(`paid to ${payTo.toLowerCase()}`)) {
        child.kill("SIGKILL");
        reject(new Error(`the start line does not name payTo ${payTo}: ${line}`));
        return;
      }
      resolve({
        url: match[1],
        child,
        exited,
        stderr: () => stderr,
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill("SIGTERM");
          const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(killer);
        },
      });
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
}
