import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { chooseProvider } from "../src/buyer/index.js";
import { tempDataDir } from "./support/buyerFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockCompletionText, mockModelId } from "./support/mockBackend.js";
import { runCli } from "./support/runCli.js";

let h: GatewayHarness;
let cheap: GatewayHarness;
let dataDir: Awaited<ReturnType<typeof tempDataDir>>;
let env: Record<string, string>;

before(async () => {
  h = await startGatewayHarness();
  // A second provider on the same chain, a fifth of the price.
  cheap = await startGatewayHarness({
    devnet: h.devnet,
    model: { inputPrice: "600000", outputPrice: "3000000" },
  });
  dataDir = await tempDataDir();
  env = { TOLLGATE_PRIVATE_KEY: h.devnet.accounts.buyers[0]!.privateKey, TOLLGATE_DATA_DIR: dataDir.path };
});
after(async () => {
  await cheap?.close();
  await h?.close();
  await dataDir?.remove();
});

const chatBody = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "say a few words please" }],
  max_tokens: 64,
});

describe("tollgate pay, chat and spend", () => {
  test("pay: the body on stdout, the receipt line on stderr, exit 0", async (t) => {
    h.backend.set({ responseTokens: 8 });
    const run = await runCli(
      ["pay", "--url", `${h.gateway.url}/v1/chat/completions`, "--body", chatBody],
      env,
    );
    assert.equal(run.code, 0, run.stderr);
    t.diagnostic(run.stderr.trim());
    // The body ends with one newline, as every other output does: a shell prompt after it starts on its own line.
    assert.match(run.stdout, /[^\n]\n$/);
    const completion = JSON.parse(run.stdout) as { choices: Array<{ message: { content: string } }> };
    assert.equal(completion.choices[0]?.message.content, mockCompletionText(8));
    assert.match(
      run.stderr,
      /paid \$[0-9.]+ of \$[0-9.]+ authorized \(saved \$[0-9.]+\) · tx 0x[0-9a-f]{64} · eip155:31337/,
    );
  });

  test("pay: a binary body is written as it came, with no newline added", async () => {
    const bytes = "\u0000PNG\u0001binary";
    const server = createServer((_request, response) => {
      response.writeHead(200, { "content-type": "application/octet-stream" }).end(bytes);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const run = await runCli(["pay", "--url", `http://127.0.0.1:${port}/file.bin`], env);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, bytes);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("pay: a policy refusal exits 3 and names the rule", async () => {
    const policy = join(dataDir.path, "policy.yaml");
    await writeFile(policy, 'perCall: "10"\ndaily: "$5.00"\n');
    const run = await runCli(
      ["pay", "--url", `${h.gateway.url}/v1/chat/completions`, "--body", chatBody, "--policy", policy],
      env,
    );
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, /refused by policy \(perCall\)/);
    assert.equal(run.stdout, "");
    const json = await runCli(
      [
        "pay",
        "--url",
        `${h.gateway.url}/v1/chat/completions`,
        "--body",
        chatBody,
        "--policy",
        policy,
        "--json",
      ],
      env,
    );
    assert.equal(json.code, 3, json.stderr);
    const refusal = JSON.parse(json.stdout) as {
      status: null;
      payment: null;
      error: { code: string; message: string; details: { rule: string } };
    };
    assert.equal(refusal.status, null);
    assert.equal(refusal.error.code, "TOLLGATE_POLICY_REFUSED");
    assert.equal(refusal.error.details.rule, "perCall");
    assert.match(refusal.error.message, /refused by policy \(perCall\)/);
  });

  test("pay: a payment the seller refuses exits 4", async () => {
    const broke = await h.devnet.createBuyer(0n);
    const run = await runCli(
      ["pay", "--url", `${h.gateway.url}/v1/chat/completions`, "--body", chatBody, "--rpc", h.devnet.rpcUrl],
      { ...env, TOLLGATE_PRIVATE_KEY: broke.privateKey },
    );
    assert.equal(run.code, 4, run.stderr);
    // Told in a sentence with the figures, not the seller's JSON.
    assert.match(
      run.stderr,
      new RegExp(
        `tollgate pay: HTTP 402 Payment Required: the seller refused the payment: the buyer ${broke.address} has \\$0\\.00 USDC on eip155:31337, and this request may cost up to \\$0\\.\\d+; fund the wallet and retry`,
      ),
    );
    assert.equal(run.stdout, "");
    assert.doesNotMatch(run.stderr, /accepts/);
  });

  test("pay: an HTTP error exits 5", async () => {
    const run = await runCli(["pay", "--url", `${h.gateway.url}/v1/nowhere`], env);
    assert.equal(run.code, 5, run.stderr);
    assert.match(run.stdout, /TOLLGATE_ROUTE_UNKNOWN/);
    assert.match(run.stdout, /[^\n]\n$/);
    assert.match(run.stderr, /tollgate pay: HTTP 404 Not Found: no route GET \/v1\/nowhere/);
  });

  test("chat across two gateways picks the cheaper, says why, streams and ends with the receipt", async (t) => {
    cheap.backend.set({ responseTokens: 6, tokensPerSecond: 200 });
    const run = await runCli(
      [
        "chat",
        "--gateway",
        h.gateway.url,
        "--gateway",
        `${cheap.gateway.url}/v1`,
        "--model",
        mockModelId,
        "--max-tokens",
        "32",
        "say hello",
      ],
      env,
    );
    assert.equal(run.code, 0, run.stderr);
    t.diagnostic(run.stderr.trim());
    assert.equal(run.stdout.trim(), mockCompletionText(6));
    assert.match(
      run.stderr,
      new RegExp(
        `provider: chose ${cheap.gateway.url}/v1 \\(${mockModelId}\\): the cheapest for this request`,
      ),
    );
    assert.match(run.stderr, /paid \$[0-9.]+ of \$[0-9.]+ authorized/);
    assert.equal(cheap.backend.inferenceRequests.length, 1);
  });

  test("chat writes out the control characters of a seller's answer, keeping its line breaks and tabs", async () => {
    cheap.backend.set({
      answerTokens: ["Hi", "\u001b]0;pwned\u0007", "\u001b[2J", "\u009b31m", "\tthere\n", "bye"],
    });
    try {
      const run = await runCli(
        ["chat", "--gateway", cheap.gateway.url, "--model", mockModelId, "--max-tokens", "32", "say hello"],
        env,
      );
      assert.equal(run.code, 0, run.stderr);
      assert.equal(
        run.stdout,
        "Hi\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\tthere\nbye\n",
        "no escape sequence reaches the terminal",
      );
    } finally {
      cheap.backend.set({ answerTokens: undefined });
    }
  });

  test("the router skips a provider the policy refuses, and an unreachable one, and says so", async () => {
    const cheapOrigin = new URL(cheap.gateway.url).origin;
    const route = await chooseProvider({
      gateways: [cheap.gateway.url, h.gateway.url, "http://127.0.0.1:9"],
      models: ["no-such-model", mockModelId],
      body: { messages: [{ role: "user", content: "say hello" }], max_tokens: 32 },
      policy: { providers: { [cheapOrigin]: { perCall: "1" } } },
    });
    assert.equal(route.chosen?.origin, new URL(h.gateway.url).origin);
    assert.equal(
      route.candidates.find((candidate) => candidate.origin === cheapOrigin)?.refusal?.rule,
      "providers.perCall",
    );
    assert.equal(route.unreachable.length, 1);
    assert.match(route.reason, /refused: providers\.perCall/);
    assert.match(route.reason, /127\.0\.0\.1:9 unreachable/);
    // A model no gateway offers (a typo) is answered with the ones they do offer.
    const typo = await chooseProvider({
      gateways: [h.gateway.url, "http://127.0.0.1:9"],
      models: [`${mockModelId}-typo`],
      body: { messages: [{ role: "user", content: "say hello" }], max_tokens: 32 },
    });
    assert.equal(typo.chosen, undefined);
    assert.match(typo.reason, new RegExp(`^no provider offers ${mockModelId}-typo within policy: `));
    assert.match(typo.reason, new RegExp(`; the gateways offer ${mockModelId}$`));
    assert.match(typo.reason, /127\.0\.0\.1:9 unreachable \(.*: the URL's port is one that fetch refuses/);
    assert.doesNotMatch(typo.reason, /fetch failed/);
  });

  test("spend --json: today's spend per provider and the open disputes", async () => {
    const run = await runCli(["spend", "--json"], env);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as {
      day: string;
      countedAtomic: string;
      providers: Array<{ origin: string; chargedAtomic: string; payments: number }>;
      disputes: unknown[];
    };
    assert.equal(report.day, new Date().toISOString().slice(0, 10));
    const origins = report.providers.map((provider) => provider.origin).sort();
    assert.deepEqual(origins, [new URL(h.gateway.url).origin, new URL(cheap.gateway.url).origin].sort());
    assert.ok(BigInt(report.countedAtomic) > 0n);
    assert.deepEqual(report.disputes, []);
    const text = await runCli(["spend"], env);
    assert.match(text.stdout, /spend on \d{4}-\d{2}-\d{2} \(UTC\)/);
    assert.match(text.stdout, /open disputes: 0/);
  });
});
