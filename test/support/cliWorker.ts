// Runs the CLI's `main` on request inside a worker thread, capturing this thread's stdout and stderr.
import { parentPort } from "node:worker_threads";
import { main } from "../../src/cli/main.js";

type Job = { args: string[]; env: Record<string, string | undefined> };

parentPort?.on("message", async ({ args, env }: Job) => {
  const saved = Object.fromEntries(Object.keys(env).map((name) => [name, process.env[name]]));
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  const out: string[] = [];
  const err: string[] = [];
  const stdoutWrite = process.stdout.write;
  const stderrWrite = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) =>
    out.push(String(chunk)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) =>
    err.push(String(chunk)) > 0) as typeof process.stderr.write;
  let code: number | null;
  try {
    code = await main(args);
  } catch (error) {
    err.push(String(error));
    code = null;
  } finally {
    process.stdout.write = stdoutWrite;
    process.stderr.write = stderrWrite;
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
  parentPort?.postMessage({ code, stdout: out.join(""), stderr: err.join("") });
});
