import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { PERMIT2_ADDRESS } from "@x402/evm";
import OpenAI from "openai";
import { createPublicClient, erc20Abi, http } from "viem";
import { createPayingFetch } from "../src/buyer/index.js";
import { parseReceiptEvent } from "../src/protocol/index.js";
import { officialPayingFetch } from "./support/gatewayHarness.js";
import { runCli } from "./support/runCli.js";

/**
 * Starts `tollgate <args>` as a real process and resolves with its first stdout line; `detached` gives
 * it a process group of its own, as a terminal gives its foreground command.
 */
function startCli(
  args: string[],
  { detached = false }: { detached?: boolean } = {},
): Promise<{ child: ChildProcess; firstLine: string; stderr: () => string }> {
  const child = spawn(process.execPath, ["bin/tollgate.js", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    detached,
  });
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => {
    stderr += data.toString();
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", (firstLine) => resolve({ child, firstLine, stderr: () => stderr }));
    child.once("exit", (code) => reject(new Error(`tollgate ${args[0]} exited with ${code}: ${stderr}`)));
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

test("tollgate devnet --json prints one ready line and stops cleanly on SIGINT, leaving no anvil", async () => {
  const { child, firstLine } = await startCli(["devnet", "--json", "--port", "0"]);
  const ready = JSON.parse(firstLine) as {
    rpcUrl: string;
    chainId: number;
    network: string;
    contracts: Record<string, string>;
    accounts: { buyers: unknown[] };
  };
  assert.equal(ready.chainId, 31337);
  assert.equal(ready.network, "eip155:31337");
  assert.equal(ready.contracts.permit2, "0x000000000022D473030F116dDEE9F6B43aC78BA3");
  assert.ok(ready.accounts.buyers.length >= 3);
  const rpc = () =>
    fetch(ready.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
    });
  assert.equal((await rpc()).status, 200);
  child.kill("SIGINT");
  assert.equal(await exitOf(child), 0);
  await assert.rejects(rpc(), "anvil is gone");
  // (Checked once the devnet stopped, so that a failure leaves none running.) The README's devnet row lists the contracts of this line.
  const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
  const documented = /^\| `devnet .*"contracts":\{([^}]*)\}/m.exec(readme)?.[1];
  assert.ok(documented, "the README shows devnet --json's contracts");
  assert.deepEqual(
    [...documented.matchAll(/"([a-zA-Z0-9]+)"/g)].map((match) => match[1]),
    Object.keys(ready.contracts),
  );
});

const chainIdAt = (rpcUrl: string) =>
  fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
  });

test("a devnet killed with SIGKILL leaves no anvil behind: its chain stops answering", async () => {
  const { child, firstLine } = await startCli(["devnet", "--json", "--port", "0"]);
  const { rpcUrl } = JSON.parse(firstLine) as { rpcUrl: string };
  assert.equal((await chainIdAt(rpcUrl)).status, 200);
  child.kill("SIGKILL");
  await exitOf(child);
  let answering = true;
  const giveUpAt = Date.now() + 15_000;
  while (answering && Date.now() < giveUpAt) {
    answering = await chainIdAt(rpcUrl).then(
      () => true,
      () => false,
    );
    if (answering) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(answering, false, "anvil stopped once the process that started it was gone");
});

// Ctrl-C in a terminal signals the whole foreground process group: the devnet's chain must outlive the
// gateway's shutdown, which claims and settles every voucher it charged.
test("Ctrl-C on tollgate dev (SIGINT to its process group): the last vouchers are claimed and settled before the chain stops", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tollgate-dev-ctrl-c-"));
  const dataDir = join(dir, "ledger");
  const { child, firstLine, stderr } = await startCli(
    ["dev", "--json", "--port", "0", "--tokens-per-second", "500", "--data-dir", dataDir],
    { detached: true },
  );
  const group = child.pid!;
  try {
    const ready = JSON.parse(firstLine) as {
      gatewayUrl: string;
      rpcUrl: string;
      model: string;
      buyer: { privateKey: `0x${string}` };
    };
    const payingFetch = createPayingFetch({
      privateKey: ready.buyer.privateKey,
      rpcUrl: ready.rpcUrl,
      dataDir: "memory://",
    });
    const client = new OpenAI({
      apiKey: "x402",
      baseURL: `${ready.gatewayUrl}/v1`,
      fetch: payingFetch,
      maxRetries: 0,
    });
    for (const content of ["open the channel", "pay by voucher"])
      await client.chat.completions.create({
        model: ready.model,
        messages: [{ role: "user", content }],
        max_tokens: 8,
      });
    await payingFetch.close();
    process.kill(-group, "SIGINT");
    assert.equal(await exitOf(child), 0);
    assert.doesNotMatch(stderr(), /claims at shutdown (failed|did not finish)/);
    await assert.rejects(chainIdAt(ready.rpcUrl), "the devnet's chain stopped with it");
    const listed = await runCli(["channels", "--json", "--data-dir", dataDir]);
    assert.equal(listed.code, 0, listed.stderr);
    const { totals } = JSON.parse(listed.stdout) as {
      totals: { channels: number; chargedAtomic: string; totalClaimedAtomic: string; settledAtomic: string };
    };
    assert.equal(totals.channels, 1);
    assert.ok(BigInt(totals.chargedAtomic) > 0n);
    assert.equal(totals.totalClaimedAtomic, totals.chargedAtomic, "every charge claimed");
    assert.equal(totals.settledAtomic, totals.chargedAtomic, "every claim settled to payTo");
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(-group, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

test("tollgate dev --json: the quick start serves a paid streaming request", async () => {
  const { child, firstLine } = await startCli([
    "dev",
    "--json",
    "--port",
    "0",
    "--tokens-per-second",
    "200",
    "--data-dir",
    "memory://",
  ]);
  try {
    const ready = JSON.parse(firstLine) as {
      gatewayUrl: string;
      network: `eip155:${number}`;
      model: string;
      dashboardUrl: string;
      metricsUrl: string;
      buyer: { privateKey: `0x${string}` };
    };
    assert.equal(ready.model, "tollgate-demo");
    // The README's dev row lists the fields of this line.
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const documented = /^\| `dev .*`--json` prints one line once ready: `(\{[^`]*\})`/m.exec(readme)?.[1];
    assert.ok(documented, "the README shows dev --json's line");
    assert.deepEqual(
      [...documented.replace(/"buyer":\{[^}]*\}/, '"buyer"').matchAll(/"([a-zA-Z]+)"/g)].map(
        (match) => match[1],
      ),
      Object.keys(ready),
    );
    const client = new OpenAI({
      apiKey: "unused",
      baseURL: `${ready.gatewayUrl}/v1`,
      fetch: officialPayingFetch(ready.buyer.privateKey, ready.network),
    });
    const stream = await client.chat.completions.create({
      model: ready.model,
      messages: [{ role: "user", content: "Tell me about tolls" }],
      max_tokens: 30,
      stream: true,
    });
    let text = "";
    let receipt: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if ("x402_receipt" in chunk) receipt = chunk;
    }
    assert.ok(text.length > 0);
    const parsed = parseReceiptEvent(receipt as object);
    assert.ok(parsed.ok);
    assert.equal(parsed.receipt.success, true);
    assert.equal(parsed.receipt.usage.completion_tokens, 30);
    assert.ok(
      BigInt(parsed.receipt.amount) > 0n && BigInt(parsed.receipt.amount) < BigInt(parsed.receipt.maxAmount),
    );
    // The operator's side is on in dev: the metrics count the payment, the dashboard opens with its link only.
    const metrics = await (await fetch(ready.metricsUrl)).text();
    const revenue = /^tollgate_revenue_atomic_total\{[^}]*\} (\d+)$/m.exec(metrics);
    assert.equal(revenue?.[1], parsed.receipt.amount);
    const dashboard = await fetch(ready.dashboardUrl);
    assert.equal(dashboard.status, 200);
    assert.match(await dashboard.text(), /Recent payments/);
    const withoutToken = new URL(ready.dashboardUrl);
    withoutToken.search = "";
    assert.equal((await fetch(withoutToken)).status, 401);
  } finally {
    child.kill("SIGTERM");
    assert.equal(await exitOf(child), 0);
  }
});

// By default a fresh wallet pays tollgate dev through a channel deposit (ERC-3009, no approval at all:
// test/buyerChannels.test.ts); with channels turned off by its policy it pays upto, the facilitator
// sponsoring its Permit2 approval.
test("tollgate dev --fresh-buyer: tollgate chat, channels off by policy, pays upto from the fresh wallet, the facilitator sponsoring its Permit2 approval", async () => {
  const { child, firstLine } = await startCli([
    "dev",
    "--json",
    "--port",
    "0",
    "--tokens-per-second",
    "200",
    "--fresh-buyer",
    "--data-dir",
    "memory://",
  ]);
  try {
    const ready = JSON.parse(firstLine) as {
      gatewayUrl: string;
      rpcUrl: string;
      asset: `0x${string}`;
      model: string;
      buyer: {
        address: `0x${string}`;
        privateKey: `0x${string}`;
        permit2Approved: boolean;
        nativeGas: boolean;
      };
    };
    assert.equal(ready.buyer.permit2Approved, false);
    assert.equal(ready.buyer.nativeGas, false);
    const chain = createPublicClient({ transport: http(ready.rpcUrl) });
    const allowance = () =>
      chain.readContract({
        address: ready.asset,
        abi: erc20Abi,
        functionName: "allowance",
        args: [ready.buyer.address, PERMIT2_ADDRESS],
      });
    const usdc = () =>
      chain.readContract({
        address: ready.asset,
        abi: erc20Abi,
        functionName: "balanceOf",
        args: [ready.buyer.address],
      });
    assert.equal(await allowance(), 0n);
    assert.equal(await chain.getBalance({ address: ready.buyer.address }), 0n);
    const usdcBefore = await usdc();
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const policyFile = join(await mkdtemp(join(tmpdir(), "tollgate-policy-")), "policy.yaml");
    await writeFile(policyFile, "channels: never\n");

    const run = await runCli(
      [
        "chat",
        "--policy",
        policyFile,
        "--gateway",
        ready.gatewayUrl,
        "--model",
        ready.model,
        "--rpc",
        ready.rpcUrl,
        "--max-tokens",
        "20",
        "--json",
        "Tell me about tolls",
      ],
      { TOLLGATE_PRIVATE_KEY: ready.buyer.privateKey, TOLLGATE_DATA_DIR: "memory://" },
    );
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as {
      answer: string;
      payment: {
        success: boolean;
        chargedAtomic: string;
        usage: { promptTokens: number; completionTokens: number };
      };
    };
    assert.ok(out.answer.length > 0);
    assert.equal(out.payment.success, true);
    // The dev model's prices: $0.50 and $1.50 per 1M tokens of the 6-decimal test USDC.
    const { promptTokens, completionTokens } = out.payment.usage;
    const charge =
      (BigInt(promptTokens) * 500_000n + BigInt(completionTokens) * 1_500_000n + 999_999n) / 1_000_000n;
    assert.equal(BigInt(out.payment.chargedAtomic), charge);
    assert.equal(await usdc(), usdcBefore - charge);
    assert.ok((await allowance()) > 0n, "Permit2 is now approved");
    assert.equal(
      await chain.getBalance({ address: ready.buyer.address }),
      0n,
      "the buyer spent no native gas",
    );
  } finally {
    child.kill("SIGTERM");
    assert.equal(await exitOf(child), 0);
  }
});

test("a bad gateway config names the key that is wrong", async () => {
  const { mkdtemp, writeFile } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = await mkdtemp(join(tmpdir(), "tollgate-config-"));
  const file = join(dir, "tollgate.yaml");
  await writeFile(
    file,
    "payTo: '0x1111111111111111111111111111111111111111'\nmodels:\n  - id: m\n    backend: { baseUrl: not-a-url }\n    inputPrice: '$0.1'\n    outputPrice: '$0.2'\n",
  );
  const child = spawn(process.execPath, ["bin/tollgate.js", "gateway", "--config", file], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (data: Buffer) => {
    stderr += data.toString();
  });
  assert.equal(await exitOf(child), 2);
  assert.match(stderr, /models\.0\.backend\.baseUrl/);
});
