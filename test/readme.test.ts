import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { commandFlags } from "../src/cli/commandFlags.js";
import { type CommandName, commandUsage } from "../src/cli/commandUsage.js";
import { startDemoBackend } from "../src/demo/index.js";
import { startDevnet } from "../src/devnet/index.js";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { countTextTokens } from "../src/pricing/index.js";

const repo = fileURLToPath(new URL("../", import.meta.url));
const readme = await readFile(join(repo, "README.md"), "utf8");

const flagsIn = (text: string) => new Set([...text.matchAll(/--[a-z][a-z0-9-]*/g)].map((match) => match[0]));
const sorted = (set: Set<string>) => [...set].sort();

/** Each row of the README's command tables (`| command | what it does |`): the command and its synopsis's flags. */
function readmeRows(): Map<string, Set<string>> {
  const rows = new Map<string, Set<string>>();
  let inCommandTable = false;
  for (const line of readme.split("\n")) {
    if (/^\| command \|/.test(line)) inCommandTable = true;
    else if (!line.startsWith("|")) inCommandTable = false;
    const row = inCommandTable ? /^\| `([a-z]+)((?: [^`]*)?)` \|/.exec(line) : null;
    // A command listed twice (the seller's and the buyer's side) has the flags of both rows.
    if (row) rows.set(row[1]!, new Set([...(rows.get(row[1]!) ?? []), ...flagsIn(row[2]!)]));
  }
  return rows;
}

describe("the README tells the truth", () => {
  test("every command's flags in the README are those of its --help, and those it accepts", () => {
    const rows = readmeRows();
    for (const name of Object.keys(commandUsage) as CommandName[]) {
      const synopsis = commandUsage[name].split("\n")[0]!;
      const accepted = new Set(Object.keys(commandFlags[name]).map((flag) => `--${flag}`));
      assert.ok(rows.has(name), `the README lists tollgate ${name}`);
      assert.deepEqual(sorted(rows.get(name)!), sorted(flagsIn(synopsis)), `README vs --help of ${name}`);
      assert.deepEqual(sorted(flagsIn(synopsis)), sorted(accepted), `--help vs the flags ${name} accepts`);
    }
    for (const name of rows.keys())
      assert.ok(Object.hasOwn(commandUsage, name), `README row ${name} is a command`);
  });

  test("every function the README imports from tollgate, or names of the SDK, is exported by the package root", async () => {
    const root = await import("../src/index.js");
    const imported = [...readme.matchAll(/import \{([^}]*)\} from "tollgate"/g)].flatMap((match) =>
      match[1]!.split(",").map((name) => name.trim()),
    );
    // A function of a domain's public face that the README names in backticks (`refundChannels`).
    const named = new Set(
      [...readme.matchAll(/`([a-z][A-Za-z0-9]+)(?:\([^`]*\))?`/g)].map((match) => match[1]!),
    );
    const domains = await Promise.all([
      import("../src/buyer/index.js"),
      import("../src/mcp/index.js"),
      import("../src/gateway/index.js"),
      import("../src/facilitator/index.js"),
      import("../src/ledger/index.js"),
    ]);
    const documented = domains.flatMap((domain) =>
      Object.entries(domain)
        .filter(([name, value]) => named.has(name) && typeof value === "function")
        .map(([name]) => name),
    );
    assert.ok(
      imported.length > 5 && documented.includes("createPayingFetch"),
      "the README names the library's functions",
    );
    const missing = [...new Set([...imported, ...documented])].filter((name) => !Object.hasOwn(root, name));
    assert.deepEqual(missing, [], "named in the README, not exported by the package root");
  });

  test("the CI description names the steps of .ci/run, in order", async () => {
    const script = await readFile(join(repo, ".ci/run"), "utf8");
    const ciSteps = script
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line.startsWith("npm "))
      .map((line) => line.replace(/\s+--no-audit --no-fund$/, ""));
    const paragraph = readme.split("\n\n").find((text) => /CI\s+\(`\.ci\/run`\)/.test(text));
    assert.ok(paragraph, "the README describes CI");
    const described = [...paragraph.matchAll(/`(npm [^`]+)`/g)].map((match) => match[1]!);
    assert.deepEqual(described, ciSteps);
    if (script.includes("postgresql")) assert.match(paragraph, /PostgreSQL/);
  });

  test("the TypeScript example with the official openai client and @x402/fetch runs as written", async (t) => {
    const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
      .map((match) => match[1]!)
      .find((code) => code.includes("wrapFetchWithPayment"));
    assert.ok(block, "the README has the example");
    const devnet = await startDevnet({ buyers: 1 });
    const demo = await startDemoBackend({
      countTokens: (text) => countTextTokens(text),
      tokensPerSecond: 400,
    });
    const gateway = await startGateway({
      config: parseGatewayConfig({
        network: devnet.network,
        rpcUrl: devnet.rpcUrl,
        asset: devnet.contracts.usdc,
        assetDomain: { name: "USD Coin", version: "2" },
        payTo: devnet.accounts.payTo.address,
        facilitator: { privateKey: devnet.accounts.facilitator.privateKey },
        server: { port: 0 },
        models: [
          { id: demo.model, backend: { baseUrl: demo.url }, inputPrice: "$0.50", outputPrice: "$1.50" },
        ],
      }),
      pollingIntervalMs: 20,
    });
    const dir = await mkdtemp(join(tmpdir(), "tollgate-readme-"));
    try {
      await symlink(await realpath(join(repo, "node_modules")), join(dir, "node_modules"), "dir");
      const file = join(dir, "example.mts");
      await writeFile(file, block);
      const buyer = devnet.accounts.buyers[0]!;
      const before = await devnet.usdcBalance(buyer.address);
      const output = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ["--import", "tsx", file], {
          cwd: dir,
          env: { ...process.env, PRIVATE_KEY: buyer.privateKey, GATEWAY: gateway.url },
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (data: Buffer) => {
          stdout += data.toString();
        });
        child.stderr.on("data", (data: Buffer) => {
          stderr += data.toString();
        });
        child.on("close", (code) => resolve({ code, stdout, stderr }));
      });
      t.diagnostic(output.stdout.slice(-400));
      assert.equal(output.code, 0, output.stderr);
      assert.ok(output.stdout.trim().length > 0);
      const paid = before - (await devnet.usdcBalance(buyer.address));
      assert.ok(paid > 0n, "the example paid");
      // It prints the receipt with the fields the README's comment names, the charge among them.
      assert.match(output.stdout, new RegExp(`amount: '${paid}'`));
      for (const field of /x402_receipt\); \/\/ (.*)$/m.exec(block)?.[1]?.split(", ") ?? ["(none)"]) {
        assert.match(output.stdout, new RegExp(`\\b${field.split(" ")[0]}:`), `the receipt has ${field}`);
      }
    } finally {
      await gateway.close();
      await demo.close();
      await devnet.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
