// The package as users get it: `npm pack`, installed with `npm install --omit=dev` into an empty
// project, then the CLI and the library used from there. It needs the npm registry; on a 2-core
// machine the pack takes ~10 s (with the build), the install ~30 s and the whole file ~80 s.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const { version } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };

type Run = { code: number | null; stdout: string; stderr: string; ms: number };

/** Runs a command to its end. npm's own `npm_*` variables are dropped: under `npm test` they would
 *  point the nested npm at this repository instead of the temporary project. */
function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith("npm_")),
  );
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...inherited, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      shell: process.platform === "win32", // npm and npx are .cmd scripts there
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
    child.on("close", (code) =>
      resolve({ code, stdout, stderr, ms: Math.round(performance.now() - startedAt) }),
    );
  });
}

function firstLineOf(child: ChildProcess, timeoutMs: number): Promise<string> {
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => {
    stderr += data.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ready line in ${timeoutMs} ms: ${stderr}`)),
      timeoutMs,
    );
    createInterface({ input: child.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}: ${stderr}`));
    });
  });
}

describe("the packed package, installed without dev dependencies", () => {
  let workDir: string;
  let project: string;
  let installed: string;
  let setupFigures: string;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "tollgate-packed-"));
    project = join(workDir, "project");
    installed = join(project, "node_modules", "tollgate");
    // prepack builds dist/ first.
    const pack = await run("npm", ["pack", "--json", "--pack-destination", workDir], repoRoot);
    assert.equal(pack.code, 0, pack.stderr);
    const [{ filename }] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as [{ filename: string }];
    await mkdir(project);
    await writeFile(
      join(project, "package.json"),
      JSON.stringify({ name: "tollgate-user", private: true, type: "module" }),
    );
    const install = await run(
      "npm",
      ["install", "--omit=dev", "--no-audit", "--no-fund", join(workDir, filename)],
      project,
    );
    assert.equal(install.code, 0, install.stderr);
    setupFigures = `npm pack ${pack.ms} ms (with the build), npm install --omit=dev ${install.ms} ms`;
  });

  after(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test("ships compiled JavaScript and neither the TypeScript sources nor tsx", (t) => {
    t.diagnostic(setupFigures);
    assert.ok(existsSync(join(installed, "dist", "cli", "main.js")));
    assert.ok(existsSync(join(installed, "contracts", "TestUSDC.sol")), "the devnet compiles these");
    assert.equal(existsSync(join(installed, "src")), false);
    assert.equal(existsSync(join(project, "node_modules", "tsx")), false);
    assert.equal(existsSync(join(project, "node_modules", "typescript")), false);
  });

  test("npx tollgate --version prints the package version", async () => {
    const result = await run("npx", ["--no-install", "tollgate", "--version"], project);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), version);
  });

  test("npx tollgate --help lists the commands", async (t) => {
    const result = await run("npx", ["--no-install", "tollgate", "--help"], project);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /tollgate dev /);
    assert.match(result.stdout, /tollgate chat /);
    const direct = await run(process.execPath, [join(installed, "bin", "tollgate.js"), "--help"], project);
    t.diagnostic(`--help: ${result.ms} ms through npx, ${direct.ms} ms with node directly`);
  });

  test("the library imports by its package name", async () => {
    const script = "import('tollgate').then((m) => console.log(JSON.stringify(Object.keys(m).sort())))";
    const result = await run(process.execPath, ["-e", script], project);
    assert.equal(result.code, 0, result.stderr);
    const names = JSON.parse(result.stdout) as string[];
    for (const name of ["startGateway", "createPayingFetch", "startDevnet", "tollgateHono", "TollgateError"])
      assert.ok(names.includes(name), name);
  });

  test("tollgate dev --json serves a paid tollgate chat", async (t) => {
    const dev = spawn(
      process.execPath,
      [join(installed, "bin", "tollgate.js"), "dev", "--json", "--port", "0", "--tokens-per-second", "500"],
      { cwd: project, stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      const startedAt = performance.now();
      // The first start compiles the contracts (nothing is cached in a fresh install).
      const ready = JSON.parse(await firstLineOf(dev, 600_000)) as {
        gatewayUrl: string;
        model: string;
        buyer: { privateKey: string };
      };
      t.diagnostic(`tollgate dev ready in ${Math.round(performance.now() - startedAt)} ms`);
      const chat = await run(
        "npx",
        [
          "--no-install",
          "tollgate",
          "chat",
          "--gateway",
          ready.gatewayUrl,
          "--model",
          ready.model,
          "--max-tokens",
          "20",
          "Tell me about tolls",
        ],
        project,
        { TOLLGATE_PRIVATE_KEY: ready.buyer.privateKey, TOLLGATE_DATA_DIR: join(workDir, "buyer") },
      );
      assert.equal(chat.code, 0, chat.stderr);
      assert.ok(chat.stdout.trim().length > 0);
      assert.match(chat.stderr, /paid \$[0-9.]+ of \$[0-9.]+ authorized/);
    } finally {
      const exited = new Promise((resolve) => dev.once("exit", resolve));
      dev.kill("SIGTERM");
      assert.equal(await exited, 0);
    }
  });
});
