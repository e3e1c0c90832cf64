import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { privateKeyToAccount } from "viem/accounts";
import { createPayingFetch } from "../src/buyer/index.js";
import { claimConfiguredLedger } from "../src/cli/gatewayCommand.js";
import { ledgerAccessFile } from "../src/cli/ledgerAccess.js";
import { compileContracts } from "../src/devnet/index.js";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { openLedger } from "../src/ledger/index.js";
import { officialPayingFetch } from "./support/gatewayHarness.js";
import { runCli } from "./support/runCli.js";
import { runMain } from "./support/runMain.js";

const bin = fileURLToPath(new URL("../bin/tollgate.js", import.meta.url));
const payTo = "0x1111111111111111111111111111111111111111";
let dir: string;
let dev: ChildProcess | undefined;
const lines: string[] = [];

type Report = {
  totals: Array<{ model: string; count: number; chargedAtomic: string }>;
  recent: Array<{ status: string; chargeAtomic: string | null; transaction: string | null }>;
};

/** `tollgate dev` as a newcomer runs it: in a folder of their own, no flags; resolves once it says it is up. */
function startDev(cwd: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [bin, "dev", "--port", "0", "--tokens-per-second", "500"], {
    cwd,
    env: { ...process.env, TOLLGATE_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => {
    stderr += data.toString();
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      lines.push(line);
      if (line.startsWith("Press Ctrl-C")) resolve(child);
    });
    child.once("exit", (code) => reject(new Error(`tollgate dev exited with ${code}: ${stderr}`)));
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tollgate-dev-ledger-"));
  await compileContracts(); // warm: this run must not announce a compilation
  dev = await startDev(dir);
});

after(async () => {
  if (dev && dev.exitCode === null) {
    const exited = new Promise((resolve) => dev?.once("exit", resolve));
    dev.kill("SIGTERM");
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

const ledgerJson = async () => {
  const run = await runCli(["ledger", "--json"], {}, { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as Report;
};

describe("tollgate dev keeps its ledger where tollgate ledger finds it", () => {
  let charged: string;
  let uptoCharged: string;
  let channelCharged: string;
  let transaction: string;

  test("dev says nothing of compiling when the contracts are cached, and names its ledger", () => {
    assert.equal(lines[0], "Starting Tollgate dev…");
    assert.ok(
      lines.some((line) => line.includes(".tollgate/ledger")),
      lines.join("\n"),
    );
  });

  test("tollgate ledger reads the payment just made while dev runs, through the gateway", async () => {
    const gatewayUrl = /gateway\s+(http:\/\/\S+)\/v1/.exec(lines.join("\n"))?.[1];
    const key = /TOLLGATE_PRIVATE_KEY=(0x[0-9a-fA-F]{64})/.exec(lines.join("\n"))?.[1] as `0x${string}`;
    assert.ok(gatewayUrl && key, lines.join("\n"));
    const pay = officialPayingFetch(key, "eip155:31337");
    const paid = await pay(`${gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "tollgate-demo",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 8,
      }),
    });
    assert.equal(paid.status, 200);
    await paid.text();
    const receipt = decodePaymentResponseHeader(paid.headers.get("payment-response")!);
    charged = receipt.amount ?? "";
    uptoCharged = charged;
    transaction = receipt.transaction ?? "";
    const report = await ledgerJson();
    assert.equal(report.totals.length, 1);
    assert.equal(report.totals[0]?.count, 1);
    assert.equal(report.totals[0]?.chargedAtomic, charged);
    assert.equal(report.recent[0]?.status, "settled");
    assert.equal(report.recent[0]?.transaction, transaction);
  });

  test("the access file is the user's alone, and the endpoint wants its token", async () => {
    const file = ledgerAccessFile(join(dir, ".tollgate/ledger"));
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const access = JSON.parse(await readFile(file, "utf8")) as { url: string; token: string };
    const denied = await fetch(`${access.url}/ledger`, { headers: { authorization: "Bearer wrong" } });
    assert.equal(denied.status, 401);
    const none = await fetch(`${access.url}/ledger`);
    assert.equal(none.status, 401);
  });

  test("a second gateway on the same data dir is refused before it opens it", async () => {
    const config = join(dir, "tollgate.yaml");
    await writeFile(
      config,
      `network: "eip155:137"\npayTo: "${payTo}"\nfacilitator: { url: "http://127.0.0.1:9" }\nledger: { dataDir: "${join(dir, ".tollgate/ledger")}" }\nmodels:\n  - id: m\n    backend: { baseUrl: "http://127.0.0.1:9/v1" }\n    inputPrice: "$0.10"\n    outputPrice: "$0.20"\n`,
    );
    const run = await runMain(["gateway", "--config", config], { DATABASE_URL: undefined });
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /the ledger in .*\.tollgate\/ledger is held by a running gateway \(process \d+\)/,
    );
  });

  test("tollgate channels reads the channel just paid through while dev runs, through the gateway", async () => {
    const gatewayUrl = /gateway\s+(http:\/\/\S+)\/v1/.exec(lines.join("\n"))?.[1];
    const rpcUrl = /chain\s+(http:\/\/\S+)/.exec(lines.join("\n"))?.[1];
    const key = /TOLLGATE_PRIVATE_KEY=(0x[0-9a-fA-F]{64})/.exec(lines.join("\n"))?.[1] as `0x${string}`;
    assert.ok(gatewayUrl && rpcUrl && key, lines.join("\n"));
    const payingFetch = createPayingFetch({ privateKey: key, rpcUrl, dataDir: "memory://" });
    try {
      const paid = await payingFetch(`${gatewayUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "tollgate-demo",
          messages: [{ role: "user", content: "by channel" }],
          max_tokens: 8,
        }),
      });
      assert.equal(paid.status, 200, await paid.clone().text());
      await paid.text();
      await payingFetch.idle();
      const [channel] = await (await payingFetch.spendStore()).channels({
        payer: privateKeyToAccount(key).address,
      });
      assert.ok(channel, "the buyer paid by channel");
      const run = await runMain(["channels", "--data-dir", join(dir, ".tollgate/ledger"), "--json"], {
        DATABASE_URL: undefined,
      });
      assert.equal(run.code, 0, run.stderr);
      const report = JSON.parse(run.stdout) as {
        totals: { channels: number; chargedAtomic: string };
        channels: { channelId: string; chargedAtomic: string; depositedAtomic: string }[];
      };
      const listed = report.channels.find((c) => c.channelId === channel.channelId);
      assert.ok(listed, run.stdout);
      assert.equal(listed.chargedAtomic, channel.context?.chargedCumulativeAmount);
      assert.ok(BigInt(listed.chargedAtomic) > 0n);
      assert.equal(BigInt(listed.depositedAtomic), channel.depositedAtomic);
      const text = await runMain(["channels", "--data-dir", join(dir, ".tollgate/ledger")], {
        DATABASE_URL: undefined,
      });
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /Payment channels \(1\)/);
      channelCharged = listed.chargedAtomic;
      // The ledger after dev stops holds both payments.
      charged = (BigInt(charged) + BigInt(listed.chargedAtomic)).toString();
    } finally {
      await payingFetch.close();
    }
  });

  test("tollgate reconcile reconciles the ledger while dev runs, through the gateway, with no config file", async () => {
    // No tollgate.yaml here: dev's gateway reconciles its own ledger with its own chain and payTo.
    const run = await runCli(["reconcile", "--json"], {}, { cwd: dir });
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const report = JSON.parse(run.stdout) as {
      ledger: string;
      settledCount: number;
      settledAtomic: string;
      transferredAtomic: string;
      differences: unknown[];
      channels: { count: number; chargedAtomic: string; differences: unknown[] };
    };
    assert.match(report.ledger, /through the gateway holding it/);
    // The upto payment: settled once, and payTo received it.
    assert.equal(report.settledCount, 1);
    assert.equal(report.settledAtomic, uptoCharged);
    assert.equal(report.transferredAtomic, uptoCharged);
    assert.deepEqual(report.differences, []);
    // The channel payment: charged on its channel, nothing on chain above it.
    assert.equal(report.channels.count, 1);
    assert.equal(report.channels.chargedAtomic, channelCharged);
    assert.deepEqual(report.channels.differences, []);
    const text = await runCli(["reconcile"], {}, { cwd: dir });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /differences: none/);
    // The channel payment is not counted among those settled by transaction: it has its own line.
    assert.match(text.stdout, /\n {2}ledger {2}1 payment settled by transaction \(upto, exact\), \$/);
    assert.match(text.stdout, /\n {2}chain {3}1 transfer to payTo outside the channels, \$/);
    assert.match(text.stdout, /\n {2}channels 1: charged \$/);
  });

  test("after dev stops, tollgate ledger reads the data dir itself", async () => {
    const exited = new Promise<number | null>((resolve) => dev?.once("exit", resolve));
    dev?.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.equal(existsSync(ledgerAccessFile(join(dir, ".tollgate/ledger"))), false);
    const report = await ledgerJson();
    assert.equal(report.totals[0]?.chargedAtomic, charged);
    assert.ok(report.recent.some((row) => row.transaction === transaction));
  });
});

describe("where a ledger lives", () => {
  test("a data dir's missing parents are created", async () => {
    const dataDir = join(dir, "a/b/c/ledger");
    const config = parseGatewayConfig({
      network: "eip155:137",
      payTo,
      ledger: { dataDir },
      models: [{ id: "m", backend: { baseUrl: "http://127.0.0.1:9/v1" }, inputPrice: "1", outputPrice: "1" }],
    });
    const claim = await claimConfiguredLedger(config);
    try {
      assert.ok(existsSync(dataDir));
      assert.ok(existsSync(ledgerAccessFile(dataDir)));
    } finally {
      await claim?.release();
    }
    assert.equal(existsSync(ledgerAccessFile(dataDir)), false);
  });

  test("a gateway that fails to start leaves its data dir closed and unlocked for the next start", async () => {
    const dataDir = join(dir, "failed-start/ledger");
    const config = parseGatewayConfig({
      network: "eip155:137",
      payTo,
      facilitator: { url: "http://127.0.0.1:9" },
      ledger: { dataDir },
      models: [{ id: "m", backend: { baseUrl: "http://127.0.0.1:9/v1" }, inputPrice: "1", outputPrice: "1" }],
    });
    await assert.rejects(
      startGateway({ config }),
      (error: Error & { code?: string }) => error.code === "TOLLGATE_FACILITATOR_UNAVAILABLE",
    );
    const next = await openLedger({ dataDir, lockTimeoutMs: 500 });
    await next.close();
  });

  test("dev --data-dir memory:// does not say tollgate ledger reads it, and tollgate ledger says why it cannot", async () => {
    const child = spawn(
      process.execPath,
      [bin, "dev", "--port", "0", "--data-dir", "memory://", "--tokens-per-second", "500"],
      { cwd: dir, env: { ...process.env, TOLLGATE_LOG_LEVEL: "warn" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      const printed: string[] = [];
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on("line", (line) => {
          printed.push(line);
          if (line.startsWith("Press Ctrl-C")) resolve();
        });
        child.once("exit", (code) => reject(new Error(`tollgate dev exited with ${code}`)));
      });
      const ledgerLine = printed.find((line) => line.startsWith("  ledger "));
      assert.match(ledgerLine ?? "", /memory:\/\/ {3}\(in this process's memory: no other command reads it/);
      const run = await runMain(["ledger", "--data-dir", "memory://"], { DATABASE_URL: undefined });
      assert.equal(run.code, 1);
      assert.match(
        run.stderr,
        /memory:\/\/ is a ledger in one process's memory, which no other command can read/,
      );
    } finally {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
  });

  test("tollgate channels where no gateway has run says so, and makes no ledger there", async () => {
    const nowhere = join(dir, "nowhere-channels");
    const run = await runMain(["channels", "--data-dir", nowhere], { DATABASE_URL: undefined });
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stderr, /no ledger in .*nowhere-channels yet/);
    assert.equal(existsSync(nowhere), false, "no empty ledger was made");
    const memory = await runMain(["channels", "--data-dir", "memory://"], { DATABASE_URL: undefined });
    assert.equal(memory.code, 1, memory.stdout);
    assert.match(memory.stderr, /memory:\/\/ is a ledger in one process's memory/);
  });

  test("tollgate ledger where no gateway has run says so", async () => {
    const run = await runMain(["ledger", "--data-dir", join(dir, "nowhere")], { DATABASE_URL: undefined });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /no ledger in .*nowhere yet/);
  });
});
