import { Worker } from "node:worker_threads";
import type { CliRun } from "./runCli.js";

// The worker loads TypeScript the way bin/tollgate.js does: through tsx's API, then the worker module.
const bootstrap = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL("./cliWorker.ts", import.meta.url).href)}); })`;

type Pending = { resolve: (run: CliRun) => void; reject: (error: Error) => void };
let worker: Worker | undefined;
let pending: Pending | undefined;
let queue: Promise<unknown> = Promise.resolve();

function startWorker(): Worker {
  const started = new Worker(bootstrap, { eval: true, env: { ...process.env, TOLLGATE_LOG_LEVEL: "warn" } });
  started.on("message", (run: CliRun) => {
    // Held only while a run is under way: an idle worker does not keep the test process alive.
    started.unref();
    pending?.resolve(run);
  });
  started.on("error", (error: Error) => {
    worker = undefined;
    pending?.reject(error);
  });
  return started;
}

/**
 * Runs the CLI's `main` in a worker thread of this process, for commands that fail before any server or
 * chain is involved: the modules load once, where a process per run costs seconds of TypeScript loading.
 * Runs one at a time; the environment given applies to this run only.
 */
export function runMain(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  const run = queue.then(
    () =>
      new Promise<CliRun>((resolve, reject) => {
        pending = { resolve, reject };
        worker ??= startWorker();
        worker.ref();
        worker.postMessage({ args, env });
      }),
  );
  queue = run.catch(() => undefined);
  return run;
}
