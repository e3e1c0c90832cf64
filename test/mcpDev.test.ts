import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import {
  MCP_PAYMENT_META_KEY,
  readPaymentRequiredResult,
  readPaymentResponseMeta,
} from "../src/mcp/index.js";
import { tempDataDir } from "./support/buyerFixtures.js";
import { officialBuyer } from "./support/gatewayHarness.js";

const binPath = fileURLToPath(new URL("../bin/tollgate.js", import.meta.url));

type DevReady = {
  gatewayUrl: string;
  mcpUrl: string;
  network: `eip155:${number}`;
  buyer: { address: string; privateKey: `0x${string}` };
};

let dev: ChildProcess;
let ready: DevReady;
let dataDir: Awaited<ReturnType<typeof tempDataDir>>;
const clients: Client[] = [];

before(async () => {
  dataDir = await tempDataDir();
  dev = spawn(process.execPath, [binPath, "dev", "--json", "--port", "0", "--tokens-per-second", "500"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  dev.stderr?.on("data", (data: Buffer) => {
    stderr += data.toString();
  });
  ready = await new Promise<DevReady>((resolve, reject) => {
    createInterface({ input: dev.stdout! }).once("line", (line) => resolve(JSON.parse(line) as DevReady));
    dev.once("exit", (code) => reject(new Error(`tollgate dev exited with ${code}: ${stderr}`)));
  });
});
after(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  if (dev && dev.exitCode === null) {
    const exited = new Promise((resolve) => dev.once("exit", resolve));
    dev.kill("SIGTERM");
    await exited;
  }
  await dataDir?.remove();
});

// A generous bound per call: the machine running the tests may be busy.
const call = async (
  client: Client,
  name: string,
  args: Record<string, unknown>,
  meta?: Record<string, unknown>,
) =>
  (await client.callTool({ name, arguments: args, ...(meta ? { _meta: meta } : {}) }, undefined, {
    timeout: 600_000,
  })) as CallToolResult;
const textOf = (result: CallToolResult) => (result.content[0] as { text?: string } | undefined)?.text ?? "";

test("tollgate dev serves paid MCP tools at <gateway>/mcp: the official clients pay summarize once", async () => {
  assert.equal(ready.mcpUrl, `${ready.gatewayUrl}/mcp`);
  const client = new Client({ name: "test-agent", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(ready.mcpUrl)), { timeout: 600_000 });
  clients.push(client);
  const args = { text: "Toll roads charge drivers a fee to use them.", max_tokens: 24 };
  const required = readPaymentRequiredResult(await call(client, "summarize", args));
  assert.ok(required);
  const payload = await officialBuyer(ready.buyer.privateKey, ready.network).createPaymentPayload(required);
  const paid = await call(client, "summarize", args, { [MCP_PAYMENT_META_KEY]: payload });
  assert.notEqual(paid.isError, true, textOf(paid));
  assert.ok(textOf(paid).length > 0);
  const settlement = readPaymentResponseMeta(paid);
  assert.ok(settlement?.success);
  assert.ok(BigInt(settlement.amount ?? "0") > 0n);
  const replay = await call(client, "summarize", args, { [MCP_PAYMENT_META_KEY]: payload });
  assert.equal(replay.isError, true);
  assert.match(textOf(replay), /already used/);
});

test("tollgate mcp over stdio pays tollgate dev for chat, and for its paid MCP tools within the policy", async () => {
  const policyFile = join(dataDir.path, "policy.yaml");
  await writeFile(policyFile, 'perCall: "500"\n');
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  const client = new Client({ name: "test-agent", version: "1.0.0" });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [
        binPath,
        "mcp",
        "--gateway",
        ready.gatewayUrl,
        "--mcp-server",
        ready.mcpUrl,
        "--policy",
        policyFile,
      ],
      env: {
        ...env,
        TOLLGATE_PRIVATE_KEY: ready.buyer.privateKey,
        TOLLGATE_DATA_DIR: dataDir.path,
        TOLLGATE_LOG_LEVEL: "warn",
      },
      stderr: "inherit",
    }),
    { timeout: 600_000 },
  );
  clients.push(client);
  const chat = await call(client, "chat", { prompt: "Tell me about tolls", max_tokens: 20 });
  assert.notEqual(chat.isError, true, textOf(chat));
  const answer = chat.structuredContent as { answer: string; model: string; payment: { success: boolean } };
  assert.equal(answer.model, "tollgate-demo");
  assert.ok(answer.answer.length > 0);
  assert.equal(answer.payment.success, true);
  // The first request opens the channel: its transaction is the deposit's, not the charge's, and the
  // line says how much was deposited, as the CLI's receipt line does.
  assert.match(
    textOf(chat),
    /— paid \$[0-9.]+ of \$[0-9.]+ authorized \(saved \$[0-9.]+\) · deposited \$[0-9.]+ into a payment channel, tx 0x[0-9a-f]{64} · eip155:31337$/,
  );
  // The next is paid by voucher: charged, with no transaction of its own (not "zero charge").
  const again = await call(client, "chat", { prompt: "And bridges?", max_tokens: 20 });
  assert.notEqual(again.isError, true, textOf(again));
  assert.ok(BigInt((again.structuredContent as { payment: { amount: string } }).payment.amount) > 0n);
  assert.match(
    textOf(again),
    /— paid \$0\.0000[0-9]+ of \$[0-9.]+ authorized \(saved \$[0-9.]+\) · by voucher, no transaction · eip155:31337$/,
  );
  // A URL where nothing listens is said so, not "fetch failed".
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise((resolve) => closed.close(resolve));
  const unreachable = await call(client, "pay", { url: `http://127.0.0.1:${port}/v1/models` });
  assert.equal(unreachable.isError, true);
  assert.match(
    textOf(unreachable),
    new RegExp(`nothing answers at 127\\.0\\.0\\.1:${port} \\(connection refused\\): check the URL`),
  );

  // Through tollgate mcp to tollgate dev's paid tools: summarize's maximum is within perCall…
  const listed = await call(client, "mcp_list_tools", {});
  assert.match(textOf(listed), /summarize/);
  const summary = await call(client, "mcp_call_tool", {
    name: "summarize",
    arguments: { text: "Toll roads charge drivers a fee.", max_tokens: 16 },
  });
  assert.notEqual(summary.isError, true, textOf(summary));
  assert.ok(readPaymentResponseMeta(summary)?.success);
  // …count_tokens' fixed price ($0.001) is not: refused before anything is signed.
  const refused = await call(client, "mcp_call_tool", { name: "count_tokens", arguments: { text: "a b c" } });
  assert.equal(refused.isError, true);
  assert.match(textOf(refused), /refused by the spending policy \(perCall\)/);
  assert.equal((refused.structuredContent as { askedAtomic: string }).askedAtomic, "1000");
});

test("tollgate mcp --http serves the same tools over Streamable HTTP, to a client with its token on a loopback name only", async () => {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  const server = spawn(
    process.execPath,
    [binPath, "mcp", "--http", "--port", "0", "--gateway", ready.gatewayUrl],
    {
      env: {
        ...env,
        TOLLGATE_PRIVATE_KEY: ready.buyer.privateKey,
        TOLLGATE_DATA_DIR: `${dataDir.path}/http`,
        TOLLGATE_LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  try {
    const { mcpUrl, token } = await new Promise<{ mcpUrl: string; token: string }>((resolve, reject) => {
      createInterface({ input: server.stdout! }).once("line", (line) => resolve(JSON.parse(line)));
      server.once("exit", (code) => reject(new Error(`tollgate mcp --http exited with ${code}`)));
    });
    assert.match(mcpUrl, /^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const initialize = (headers: Record<string, string>) =>
      fetch(mcpUrl, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          ...headers,
        },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "initialize",
          params: {
            protocolVersion: "2025-06-18",
            capabilities: { elicitation: {} },
            clientInfo: { name: "x", version: "1" },
          },
        }),
      });
    // Anyone else on the machine, or a web page rebinding its name to 127.0.0.1, is not served.
    const noToken = await initialize({});
    assert.equal(noToken.status, 401);
    assert.match(await noToken.text(), /wants Authorization: Bearer <token>/);
    const page = await initialize({ authorization: `Bearer ${token}`, origin: "http://evil.example:4023" });
    assert.equal(page.status, 403);
    await page.text();
    const client = new Client({ name: "test-agent", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(mcpUrl), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
      { timeout: 600_000 },
    );
    clients.push(client);
    const { tools } = await client.listTools(undefined, { timeout: 600_000 });
    assert.deepEqual(tools.map((tool) => tool.name).sort(), ["chat", "list_models", "pay", "spend"]);
    const models = await call(client, "list_models", {});
    assert.match(textOf(models), /tollgate-demo \(chat\)/);
    assert.match(textOf(models), /tollgate-demo-moderation \(moderation\)/, "every API the buyer can price");
    assert.match(
      textOf(models),
      /tollgate-demo-image \(image\)[^\n]*: \$0\.01 \/ image 256x256, \$0\.04 \/ image 1024x1024/,
    );
    assert.match(textOf(models), /tollgate-demo-tts \(speech\)[^\n]*: \$15(\.00)? \/ 1M input characters/);
    assert.match(
      textOf(models),
      /tollgate-demo-stt \(transcription\)[^\n]*: \$0\.0001 \/ second of input audio/,
    );
  } finally {
    const exited = new Promise((resolve) => server.once("exit", resolve));
    server.kill("SIGTERM");
    assert.equal(await exited, 0);
  }
});
