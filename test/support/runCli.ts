import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const binPath = fileURLToPath(new URL("../../bin/tollgate.js", import.meta.url));

export type CliRun = { code: number | null; stdout: string; stderr: string };

/** Runs `bin/tollgate.js` as a child process (asynchronously, so servers in this process keep serving). */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  { cwd }: { cwd?: string } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, ...args], {
      env: { ...process.env, TOLLGATE_LOG_LEVEL: "warn", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      cwd,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
