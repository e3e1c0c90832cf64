import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { parseReceiptEvent } from "../../src/protocol/index.js";
import { expectedCharge, officialPayingFetch, testPrices } from "../support/gatewayHarness.js";
import {
  type MockBackend,
  mockCompletionText,
  mockModelId,
  startMockBackend,
} from "../support/mockBackend.js";

// A real Next.js App Router app, written to a temporary folder, that imports `withTollgate` from the
// compiled tollgate package (as an app installing it would), built with `next build` and served by
// `next start`; paid by the official @x402/fetch. Nothing is written into the repository.

const repo = fileURLToPath(new URL("../../", import.meta.url));
let devnet: Devnet;
let backend: MockBackend;
let work: string;
let next: ChildProcess | undefined;
let baseUrl: string;
/** What `next start` printed: shown with a failing assertion, where the route's own error is. */
let nextLog = "";

const billingModule = `import { countTextTokens, createBilling, createFacilitator, openLedger, parseGatewayConfig } from "tollgate";

async function build() {
  const env = process.env;
  const config = parseGatewayConfig({
    network: env.TOLLGATE_NETWORK,
    asset: env.TOLLGATE_ASSET,
    payTo: env.TOLLGATE_PAY_TO,
    models: [{
      id: env.TOLLGATE_MODEL,
      backend: { baseUrl: env.TOLLGATE_BACKEND_URL },
      inputPrice: env.TOLLGATE_INPUT_PRICE,
      outputPrice: env.TOLLGATE_OUTPUT_PRICE,
      maxOutputTokens: 128,
    }],
  });
  const facilitator = createFacilitator({
    rpcUrl: env.TOLLGATE_RPC_URL,
    privateKey: env.TOLLGATE_FACILITATOR_KEY,
    network: config.network,
    pollingIntervalMs: 20,
  });
  const ledger = await openLedger();
  return createBilling({
    terms: {
      network: config.network,
      asset: config.asset,
      assetDomain: { name: "USD Coin", version: "2" },
      payTo: config.payTo,
      maxTimeoutSeconds: config.maxTimeoutSeconds,
      facilitatorAddress: facilitator.address,
    },
    models: config.models,
    facilitator,
    ledger: ledger.payments,
    countTokens: countTextTokens,
  });
}

/**
 * The one billing of every paid route of this app (one facilitator key, one nonce manager), made at the
 * first paid request, not while next build loads the routes. Next bundles each route apart: share it globally.
 */
export function makeBilling() {
  globalThis.paidAppBilling ??= build();
  return globalThis.paidAppBilling;
}
`;

// The OpenAI path, forwarded by the library's proxy.
const proxyRoute = `import { proxyToBackend, withTollgate } from "tollgate";
import { makeBilling } from "../../../../lib/billing.js";

export const dynamic = "force-dynamic";

export const POST = withTollgate(
  (_request, _context, { quote, backendBody, signal }) =>
    proxyToBackend({ model: quote.model, body: backendBody, signal }),
  { billing: makeBilling },
);
`;

// A route of the app's own: the handler reads the limited body from the request and answers with its own stream.
const ownRoute = `import { withTollgate } from "tollgate";
import { makeBilling } from "../../../lib/billing.js";

export const dynamic = "force-dynamic";

export const POST = withTollgate(
  async (request) => {
    const body = await request.json();
    const upstream = await fetch(process.env.TOLLGATE_BACKEND_URL + "/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: request.signal,
    });
    return new Response(upstream.body, {
      status: upstream.status,
      headers: { "content-type": upstream.headers.get("content-type") ?? "application/json" },
    });
  },
  { billing: makeBilling, routeKind: "chat" },
);
`;

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (data: Buffer) => {
      output += data.toString();
    });
    child.stderr.on("data", (data: Buffer) => {
      output += data.toString();
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`${command} ${args.join(" ")} exited ${code}:\n${output}`)),
    );
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** The tollgate package as an app installs it: package.json and compiled dist/, its dependencies beside it. */
async function packTollgate(into: string): Promise<void> {
  await mkdir(into, { recursive: true });
  await run(
    join(repo, "node_modules/.bin/tsc"),
    ["-p", "tsconfig.build.json", "--outDir", join(into, "dist")],
    repo,
  );
  const manifest = JSON.parse(await readFile(join(repo, "package.json"), "utf8")) as Record<string, unknown>;
  await writeFile(
    join(into, "package.json"),
    JSON.stringify({
      name: manifest.name,
      version: manifest.version,
      type: "module",
      exports: manifest.exports,
    }),
  );
  await symlink(await realpath(join(repo, "node_modules")), join(into, "node_modules"), "dir");
  await cp(join(repo, "contracts"), join(into, "contracts"), { recursive: true });
}

async function writeApp(app: string): Promise<void> {
  const files: Record<string, string> = {
    "package.json": JSON.stringify({ name: "paid-next-app", private: true, type: "module" }),
    "next.config.mjs": `export default { serverExternalPackages: ["tollgate"] };\n`,
    "lib/billing.js": billingModule,
    "app/v1/chat/completions/route.js": proxyRoute,
    "app/api/answer/route.js": ownRoute,
  };
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(app, path, ".."), { recursive: true });
    await writeFile(join(app, path), text);
  }
  await mkdir(join(app, "node_modules"));
  for (const name of ["next", "react", "react-dom"])
    await symlink(await realpath(join(repo, "node_modules", name)), join(app, "node_modules", name), "dir");
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), "tollgate-next-"));
  [devnet, backend] = await Promise.all([
    startDevnet({ buyers: 2 }),
    startMockBackend({ responseTokens: 9 }),
  ]);
  const app = join(work, "app");
  await writeApp(app);
  // A real folder in the app's node_modules (not a symlink), so that Next treats it as the external package it is.
  await packTollgate(join(app, "node_modules", "tollgate"));
  const nextBin = join(repo, "node_modules/next/dist/bin/next");
  const env = { NEXT_TELEMETRY_DISABLED: "1" };
  // Webpack: Turbopack compiles nothing outside the app folder, and this app's packages are symlinks to the repository's.
  await run(process.execPath, [nextBin, "build", "--webpack"], app, env);
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  next = spawn(process.execPath, [nextBin, "start", "-H", "127.0.0.1", "-p", String(port)], {
    cwd: app,
    env: {
      ...process.env,
      ...env,
      TOLLGATE_NETWORK: devnet.network,
      TOLLGATE_ASSET: devnet.contracts.usdc,
      TOLLGATE_PAY_TO: devnet.accounts.payTo.address,
      TOLLGATE_MODEL: mockModelId,
      TOLLGATE_BACKEND_URL: backend.url,
      TOLLGATE_INPUT_PRICE: testPrices.inputPerMTokAtomic.toString(),
      TOLLGATE_OUTPUT_PRICE: testPrices.outputPerMTokAtomic.toString(),
      TOLLGATE_RPC_URL: devnet.rpcUrl,
      TOLLGATE_FACILITATOR_KEY: devnet.accounts.facilitator.privateKey,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    const onData = (data: Buffer) => {
      nextLog += data.toString();
      if (/Ready in|started server/i.test(nextLog)) resolve();
    };
    next?.stdout?.on("data", onData);
    next?.stderr?.on("data", onData);
    next?.once("exit", (code) => reject(new Error(`next start exited ${code}:\n${nextLog}`)));
  });
});

after(async () => {
  if (next && next.exitCode === null) {
    const exited = new Promise((resolve) => next?.once("exit", resolve));
    next.kill("SIGTERM");
    await exited;
  }
  await backend?.close();
  await devnet?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const body = (stream: boolean) =>
  JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "hello there" }],
    max_tokens: 32,
    stream,
  });
const post = (stream: boolean) => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: body(stream),
});

async function paidStreamCharge(pay: typeof fetch, url: string): Promise<bigint> {
  const streamed = await pay(url, post(true));
  assert.equal(streamed.status, 200, nextLog);
  assert.match(streamed.headers.get("content-type") ?? "", /text\/event-stream/);
  const text = await streamed.text();
  assert.ok(text.trimEnd().endsWith("data: [DONE]"), text.slice(-200));
  const parsed = parseReceiptEvent(text.split("\n").find((line) => line.includes("x402_receipt"))!);
  assert.ok(parsed.ok);
  assert.equal(parsed.receipt.success, true);
  const charge = BigInt(parsed.receipt.amount);
  assert.equal(
    charge,
    expectedCharge(parsed.receipt.usage.prompt_tokens, parsed.receipt.usage.completion_tokens),
  );
  assert.ok(charge < BigInt(parsed.receipt.maxAmount));
  return charge;
}

describe("withTollgate in a built Next.js app", () => {
  test("an unpaid request gets 402 with the request's maximum", async () => {
    const unpaid = await fetch(`${baseUrl}/v1/chat/completions`, post(false));
    assert.equal(unpaid.status, 402, nextLog);
    assert.ok(unpaid.headers.get("payment-required"));
    const bad = await fetch(`${baseUrl}/v1/chat/completions`, { method: "POST", body: "not json" });
    assert.equal(bad.status, 400);
  });

  test("paid by the official @x402/fetch: JSON with the PAYMENT-RESPONSE receipt, and a live stream ending with the receipt", async () => {
    const buyer = devnet.accounts.buyers[0]!;
    const pay = officialPayingFetch(buyer.privateKey, devnet.network);
    const start = await devnet.usdcBalance(buyer.address);
    const plain = await pay(`${baseUrl}/v1/chat/completions`, post(false));
    assert.equal(plain.status, 200, nextLog);
    const completion = (await plain.json()) as {
      choices: Array<{ message: { content: string } }>;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    assert.equal(completion.choices[0]?.message.content, mockCompletionText(9));
    const receipt = decodePaymentResponseHeader(plain.headers.get("payment-response")!);
    const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
    assert.equal(receipt.amount, charge.toString());
    const streamCharge = await paidStreamCharge(pay, `${baseUrl}/v1/chat/completions`);
    assert.equal(await devnet.usdcBalance(buyer.address), start - charge - streamCharge);
  });

  test("a handler answering with its own stream on an app path is metered and settled the same", async () => {
    const buyer = devnet.accounts.buyers[1]!;
    const pay = officialPayingFetch(buyer.privateKey, devnet.network);
    const start = await devnet.usdcBalance(buyer.address);
    const before = backend.inferenceRequests.length;
    const charge = await paidStreamCharge(pay, `${baseUrl}/api/answer`);
    assert.equal(await devnet.usdcBalance(buyer.address), start - charge);
    // The handler forwarded the limited body: the backend saw the authorized output limit.
    const sent = backend.inferenceRequests.slice(before).at(-1)?.body as { max_tokens?: number } | undefined;
    assert.equal(sent?.max_tokens, 32);
  });
});
