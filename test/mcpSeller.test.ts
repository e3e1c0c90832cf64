import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { isTollgateError } from "../src/errors/index.js";
import {
  createDemoToolServer,
  createMcpToolPayer,
  MCP_PAYMENT_META_KEY,
  type McpHttpHandler,
  mountMcpEndpoint,
  paidInferenceTool,
  paidTool,
  readPaymentRequiredResult,
  readPaymentResponseMeta,
} from "../src/mcp/index.js";
import { tempDataDir } from "./support/buyerFixtures.js";
import {
  expectedCharge,
  type GatewayHarness,
  officialBuyer,
  startGatewayHarness,
} from "./support/gatewayHarness.js";
import { mockCompletionText, mockModelId } from "./support/mockBackend.js";
import { parsePrometheusText, sumOf } from "./support/prometheusText.js";

let h: GatewayHarness;
/** The late tool's report: whether its signal was aborted when it returned, and `returned` called then. */
const lateTool: { signalAborted: boolean | undefined; returned: () => void } = {
  signalAborted: undefined,
  returned: () => {},
};
/** The slow tool's gate: `started` when a call runs, which ends once `finish` resolves. */
const slowTool = (() => {
  let started = () => {};
  let release = () => {};
  const gate = {
    running: new Promise<void>((resolve) => {
      started = resolve;
    }),
    finish: new Promise<void>((resolve) => {
      release = resolve;
    }),
    started: () => started(),
    release: () => release(),
  };
  return gate;
})();
const endpoints: McpHttpHandler[] = [];
const clients: Client[] = [];
/** What the `lookup` tool reports as its cost, per call. */
const lookupChargeAtomic = 1234n;
const lookupMaxAtomic = 5000n;
/** The fixed price of the `report` tool. */
const reportPriceAtomic = 2000n;

before(async () => {
  h = await startGatewayHarness({
    routes: (app, billing) => {
      endpoints.push(
        mountMcpEndpoint(app, {
          createServer: (endpointUrl) => createDemoToolServer({ billing, endpointUrl, model: mockModelId }),
        }),
      );
      // A tool that is not inference: an upto maximum, and the tool reports what the call cost.
      endpoints.push(
        mountMcpEndpoint(app, {
          path: "/tools-mcp",
          createServer: () => {
            const server = new McpServer({ name: "lookup-tools", version: "1.0.0" });
            server.registerTool(
              "lookup",
              { inputSchema: { key: z.string() } },
              paidTool({
                billing,
                name: "lookup",
                price: { scheme: "upto", maxAtomic: lookupMaxAtomic },
                handler: async ({ key }: { key: string }) => ({
                  result: { content: [{ type: "text", text: `value of ${key}` }] },
                  chargeAtomic: lookupChargeAtomic,
                }),
              }),
            );
            return server;
          },
        }),
      );
      // An inference tool whose caller chooses how many answers it gets (n).
      endpoints.push(
        mountMcpEndpoint(app, {
          path: "/choices-mcp",
          createServer: (endpointUrl) => {
            const server = new McpServer({ name: "choices-tools", version: "1.0.0" });
            server.registerTool(
              "brainstorm",
              { inputSchema: { topic: z.string(), n: z.number().int().positive() } },
              paidInferenceTool({
                billing,
                endpointUrl,
                name: "brainstorm",
                chatRequest: ({ topic, n }: { topic: string; n: number }) => ({
                  model: mockModelId,
                  messages: [{ role: "user", content: `ideas about ${topic}` }],
                  max_tokens: 20,
                  n,
                }),
              }),
            );
            return server;
          },
        }),
      );
      // A fixed-price tool that ignores its caller's cancellation: it answers once its call is cancelled.
      endpoints.push(
        mountMcpEndpoint(app, {
          path: "/report-mcp",
          createServer: () => {
            const server = new McpServer({ name: "report-tools", version: "1.0.0" });
            server.registerTool(
              "report",
              { inputSchema: { key: z.string() } },
              paidTool({
                billing,
                name: "report",
                price: { scheme: "exact", priceAtomic: reportPriceAtomic },
                handler: async ({ key }: { key: string }, extra) => {
                  await new Promise((resolve) => extra.signal.addEventListener("abort", resolve));
                  return { result: { content: [{ type: "text", text: `report on ${key}` }] } };
                },
              }),
            );
            return server;
          },
        }),
      );
      // A fixed-price tool with a 1 s time bound whose handler takes 3 s and ignores its signal.
      endpoints.push(
        mountMcpEndpoint(app, {
          path: "/late-mcp",
          createServer: () => {
            const server = new McpServer({ name: "late-tools", version: "1.0.0" });
            server.registerTool(
              "report",
              { inputSchema: { key: z.string() } },
              paidTool({
                billing,
                name: "late-report",
                price: { scheme: "exact", priceAtomic: reportPriceAtomic },
                timeBoundMs: 1000,
                handler: async ({ key }: { key: string }, extra) => {
                  lateTool.signalAborted = undefined;
                  await new Promise((resolve) => setTimeout(resolve, 3000));
                  lateTool.signalAborted = extra.signal.aborted;
                  lateTool.returned();
                  return { result: { content: [{ type: "text", text: `report on ${key}` }] } };
                },
              }),
            );
            return server;
          },
        }),
      );
      // A paid tool that runs until the test lets it finish, on an endpoint of at most 3 sessions.
      endpoints.push(
        mountMcpEndpoint(app, {
          path: "/slow-mcp",
          maxSessions: 3,
          createServer: () => {
            const server = new McpServer({ name: "slow-tools", version: "1.0.0" });
            server.registerTool(
              "lookup",
              { inputSchema: { key: z.string() } },
              paidTool({
                billing,
                name: "lookup",
                price: { scheme: "upto", maxAtomic: lookupMaxAtomic },
                handler: async ({ key }: { key: string }) => {
                  slowTool.started();
                  await slowTool.finish;
                  return {
                    result: { content: [{ type: "text", text: `value of ${key}` }] },
                    chargeAtomic: lookupChargeAtomic,
                  };
                },
              }),
            );
            return server;
          },
        }),
      );
    },
  });
});
after(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  for (const endpoint of endpoints) await endpoint.close();
  await h?.close();
});

async function connect(path = "/mcp"): Promise<Client> {
  const client = new Client({ name: "test-agent", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${h.gateway.url}${path}`)), {
    timeout: 600_000,
  });
  clients.push(client);
  return client;
}

const call = async (client: Client, name: string, args: Record<string, unknown>, payment?: unknown) =>
  (await client.callTool(
    { name, arguments: args, ...(payment ? { _meta: { [MCP_PAYMENT_META_KEY]: payment } } : {}) },
    undefined,
    // A generous bound per call: the machine running the tests may be busy.
    { timeout: 600_000 },
  )) as CallToolResult;

const textOf = (result: CallToolResult) => (result.content[0] as { text?: string } | undefined)?.text ?? "";

describe("paid MCP tools (x402 MCP transport)", () => {
  test("the official MCP client, paying with the official x402 client (upto), is served once; the same payment again is refused", async () => {
    h.backend.set({ responseTokens: 12 });
    const buyer = h.devnet.accounts.buyers[0]!;
    const client = await connect();
    const tools = await client.listTools(undefined, { timeout: 600_000 });
    assert.deepEqual(tools.tools.map((tool) => tool.name).sort(), ["count_tokens", "summarize"]);

    const args = { text: "toll roads collect a fee from each driver who passes", max_tokens: 40 };
    const unpaid = await call(client, "summarize", args);
    assert.equal(unpaid.isError, true);
    const required = readPaymentRequiredResult(unpaid);
    assert.ok(required, `a PaymentRequired in structuredContent: ${textOf(unpaid)}`);
    assert.deepEqual(JSON.parse(textOf(unpaid)), unpaid.structuredContent);
    const upto = required.accepts.find((offer) => offer.scheme === "upto");
    assert.ok(upto);
    assert.equal(upto.payTo, h.devnet.accounts.payTo.address);

    const payload = await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload({
      ...required,
      accepts: [upto],
    });
    const buyerBefore = await h.devnet.usdcBalance(buyer.address);
    const paid = await call(client, "summarize", args, payload);
    assert.notEqual(paid.isError, true, textOf(paid));
    assert.equal(textOf(paid), mockCompletionText(12));
    const settlement = readPaymentResponseMeta(paid);
    assert.ok(settlement?.success);
    assert.match(settlement.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(settlement.payer?.toLowerCase(), buyer.address.toLowerCase());
    const charged = BigInt(settlement.amount ?? "0");
    const usage = (paid.structuredContent as { usage: { prompt_tokens: number; completion_tokens: number } })
      .usage;
    assert.equal(usage.completion_tokens, 12);
    assert.equal(charged, expectedCharge(usage.prompt_tokens, usage.completion_tokens));
    assert.ok(charged > 0n && charged < BigInt(upto.amount), `charged ${charged} of ${upto.amount}`);
    assert.equal(await h.devnet.usdcBalance(buyer.address), buyerBefore - charged);
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.equal(row?.status, "settled");
    assert.equal(row?.route, "/mcp/tools/summarize");
    assert.equal(row?.chargeAtomic, charged);

    const rowsBefore = (await h.ledger.payments.recent({ limit: 100 })).length;
    const replay = await call(client, "summarize", args, payload);
    assert.equal(replay.isError, true);
    assert.match(textOf(replay), /already used/);
    assert.equal((await h.ledger.payments.recent({ limit: 100 })).length, rowsBefore);
    assert.equal(await h.devnet.usdcBalance(buyer.address), buyerBefore - charged);
  });

  /** A paid `summarize` call's payment, signed by buyer `index` for the tool's upto offer. */
  const summarizePayment = async (client: Client, index: number, args: Record<string, unknown>) => {
    const required = readPaymentRequiredResult(await call(client, "summarize", args));
    assert.ok(required);
    const upto = required.accepts.find((offer) => offer.scheme === "upto");
    assert.ok(upto);
    const buyer = h.devnet.accounts.buyers[index]!;
    const payload = await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload({
      ...required,
      accepts: [upto],
    });
    return { buyer, payload };
  };

  test("the inference tool gives the caller all the output it charged for: reasoning and refusals beside the text", async () => {
    const reasoning = "Let me think about this carefully. ".repeat(20);
    h.backend.set({ responseTokens: 3, messageExtras: { reasoning_content: reasoning, refusal: "no" } });
    try {
      const client = await connect();
      const args = { text: "toll roads", max_tokens: 400 };
      const { payload } = await summarizePayment(client, 1, args);
      const paid = await call(client, "summarize", args, payload);
      assert.notEqual(paid.isError, true, textOf(paid));
      const structured = paid.structuredContent as {
        text: string;
        more?: Record<string, unknown>;
        usage: { completion_tokens: number };
      };
      assert.equal(structured.text, mockCompletionText(3));
      assert.deepEqual(structured.more, { reasoning_content: reasoning, refusal: "no" });
      assert.deepEqual(JSON.parse((paid.content[1] as { text: string }).text), structured.more);
      assert.ok(structured.usage.completion_tokens > 3, "the reasoning was charged as output");
    } finally {
      h.backend.set({ messageExtras: undefined });
    }
  });

  test("an inference tool asked for several choices gives the caller every choice it charged for", async () => {
    h.backend.set({ responseTokens: 4 });
    const client = await connect("/choices-mcp");
    const args = { topic: "toll roads", n: 3 };
    const required = readPaymentRequiredResult(await call(client, "brainstorm", args));
    assert.ok(required);
    const upto = required.accepts.find((offer) => offer.scheme === "upto");
    assert.ok(upto);
    const payload = await officialBuyer(
      h.devnet.accounts.buyers[1]!.privateKey,
      h.devnet.network,
    ).createPaymentPayload({ ...required, accepts: [upto] });
    const paid = await call(client, "brainstorm", args, payload);
    assert.notEqual(paid.isError, true, textOf(paid));
    const structured = paid.structuredContent as {
      choices?: { text: string }[];
      usage: { completion_tokens: number };
    };
    assert.equal(structured.usage.completion_tokens, 12, "three choices of 4 tokens are charged");
    // Observed before: only the first choice's text came back, the other two charged and never given.
    assert.deepEqual(
      structured.choices?.map((choice) => choice.text),
      [mockCompletionText(4), mockCompletionText(4), mockCompletionText(4)],
    );
    assert.equal(paid.content.length, 3);
  });

  test("a call cancelled once the model read its prompt pays for the prompt, as an HTTP buyer leaving does", async () => {
    h.backend.set({ responseTokens: 50, firstTokenDelayMs: 5_000 });
    try {
      const client = await connect();
      const args = { text: "word ".repeat(5_000), max_tokens: 40 };
      const { buyer, payload } = await summarizePayment(client, 2, args);
      const buyerBefore = await h.devnet.usdcBalance(buyer.address);
      h.backend.clearRequests();
      const controller = new AbortController();
      const pending = client
        .callTool(
          { name: "summarize", arguments: args, _meta: { [MCP_PAYMENT_META_KEY]: payload } },
          undefined,
          {
            timeout: 600_000,
            signal: controller.signal,
          },
        )
        .catch(() => undefined);
      for (let waited = 0; h.backend.inferenceRequests.length === 0 && waited < 30_000; waited += 20)
        await new Promise((resolve) => setTimeout(resolve, 20));
      await new Promise((resolve) => setTimeout(resolve, 300));
      controller.abort("the agent moved on");
      await pending;
      await h.backend.whenIdle();
      assert.equal(h.backend.inferenceRequests.at(-1)?.clientAborted, true, "the backend was stopped");
      let row = (await h.ledger.payments.recent({ limit: 1 }))[0];
      for (let waited = 0; row?.status !== "settled" && waited < 30_000; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        row = (await h.ledger.payments.recent({ limit: 1 }))[0];
      }
      assert.equal(row?.status, "settled", `row ${row?.status} (${row?.error})`);
      assert.equal(row?.completionTokens, 0);
      assert.ok((row?.promptTokens ?? 0) > 5_000);
      assert.equal(row?.chargeAtomic, expectedCharge(row!.promptTokens!, 0));
      assert.equal(await h.devnet.usdcBalance(buyer.address), buyerBefore - row!.chargeAtomic!);
    } finally {
      h.backend.set({ firstTokenDelayMs: 0 });
    }
  });

  test("a fixed-price tool is paid with exact; the same payment again is refused", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const client = await connect();
    const unpaid = await call(client, "count_tokens", { text: "one two three" });
    const required = readPaymentRequiredResult(unpaid);
    assert.ok(required);
    assert.deepEqual(
      required.accepts.map((offer) => [offer.scheme, offer.amount]),
      [["exact", "1000"]],
    );
    const payload = await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload(required);
    const payToBefore = await h.devnet.usdcBalance(h.devnet.accounts.payTo.address);
    const paid = await call(client, "count_tokens", { text: "one two three" }, payload);
    assert.notEqual(paid.isError, true, textOf(paid));
    assert.equal(textOf(paid), "3");
    assert.ok(readPaymentResponseMeta(paid)?.success);
    assert.equal(await h.devnet.usdcBalance(h.devnet.accounts.payTo.address), payToBefore + 1000n);

    const replay = await call(client, "count_tokens", { text: "one two three" }, payload);
    assert.equal(replay.isError, true);
    const refusal = readPaymentRequiredResult(replay);
    assert.match(
      refusal?.error ?? "",
      /TOLLGATE_PAYMENT_REPLAYED: this payment authorization was already used/,
    );
    assert.equal(await h.devnet.usdcBalance(h.devnet.accounts.payTo.address), payToBefore + 1000n);
  });

  test("a paid tool's payments are counted in /metrics as the ledger books them, a call without payment as a 402, each row with its request id", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const scrape = async () => parsePrometheusText(await (await fetch(`${h.gateway.url}/metrics`)).text());
    const before = await scrape();
    const client = await connect();
    const required = readPaymentRequiredResult(await call(client, "count_tokens", { text: "four five" }));
    assert.ok(required);
    const payload = await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload(required);
    const paid = await call(client, "count_tokens", { text: "four five" }, payload);
    const settlement = readPaymentResponseMeta(paid);
    assert.ok(settlement?.success, textOf(paid));
    const replay = await call(client, "count_tokens", { text: "four five" }, payload);
    assert.equal(replay.isError, true);

    const after = await scrape();
    const added = (name: string, labels: Record<string, string>) =>
      sumOf(after, name, labels) - sumOf(before, name, labels);
    assert.equal(added("tollgate_authorized_atomic_total", { model: "count_tokens" }), 1000);
    assert.equal(added("tollgate_revenue_atomic_total", { model: "count_tokens" }), 1000);
    assert.equal(added("tollgate_payments_total", { scheme: "exact", outcome: "settled" }), 1);
    assert.equal(added("tollgate_payments_total", { scheme: "exact", outcome: "replayed" }), 1);
    assert.equal(
      added("tollgate_requests_total", {
        route: "/mcp/tools/count_tokens",
        model: "count_tokens",
        status: "200",
      }),
      1,
    );
    // The call that brought no payment was answered with the requirements: a 402, as a route counts it.
    assert.equal(
      added("tollgate_requests_total", {
        route: "/mcp/tools/count_tokens",
        model: "count_tokens",
        status: "402",
      }),
      1,
    );
    const row = (await h.ledger.payments.recent({ limit: 100 })).find(
      (payment) => payment.transaction === settlement.transaction,
    );
    assert.equal(row?.chargeAtomic, 1000n);
    assert.match(row?.requestId ?? "", /^[0-9a-f-]{36}$/);
  });

  test("an upto tool settles the charge it reports, not its maximum", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const client = await connect("/tools-mcp");
    const required = readPaymentRequiredResult(await call(client, "lookup", { key: "k" }));
    assert.ok(required);
    assert.equal(required.accepts[0]?.amount, lookupMaxAtomic.toString());
    const payload = await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload(required);
    const before = await h.devnet.usdcBalance(buyer.address);
    const paid = await call(client, "lookup", { key: "k" }, payload);
    assert.equal(textOf(paid), "value of k");
    assert.equal(readPaymentResponseMeta(paid)?.amount, lookupChargeAtomic.toString());
    assert.equal(await h.devnet.usdcBalance(buyer.address), before - lookupChargeAtomic);
  });

  test("a malformed payment is refused with the field named, and nothing is claimed", async () => {
    const client = await connect("/tools-mcp");
    const rowsBefore = (await h.ledger.payments.recent({ limit: 100 })).length;
    const scrape = async () => parsePrometheusText(await (await fetch(`${h.gateway.url}/metrics`)).text());
    const before = await scrape();
    const refused = await call(client, "lookup", { key: "k" }, { x402Version: 2, accepted: {} });
    assert.equal(refused.isError, true);
    assert.match(readPaymentRequiredResult(refused)?.error ?? "", /x402\/payment.*accepted/);
    assert.equal((await h.ledger.payments.recent({ limit: 100 })).length, rowsBefore);
    // Answered with the requirements, so counted as the 402 it is.
    const fourOhTwos = (scraped: Awaited<ReturnType<typeof scrape>>) =>
      sumOf(scraped, "tollgate_requests_total", { model: "lookup", status: "402" });
    assert.equal(fourOhTwos(await scrape()) - fourOhTwos(before), 1);
  });

  test("Tollgate's MCP client pays a paid tool within the policy, and refuses one above perCall before signing", async () => {
    h.backend.set({ responseTokens: 6 });
    const buyer = h.devnet.accounts.buyers[2]!;
    const dataDir = await tempDataDir();
    const client = await connect();
    const payer = createMcpToolPayer({
      privateKey: buyer.privateKey,
      policy: { perCall: "$0.01", daily: "$1" },
      dataDir: dataDir.path,
    });
    try {
      const before = await h.devnet.usdcBalance(buyer.address);
      const { result, settlement, maxAtomic } = await payer.callTool(
        client,
        { name: "summarize", arguments: { text: "a short text about tolls", max_tokens: 20 } },
        { server: `${h.gateway.url}/mcp`, timeoutMs: 600_000 },
      );
      assert.equal(textOf(result), mockCompletionText(6));
      assert.ok(settlement?.success);
      const charged = BigInt(settlement.amount ?? "0");
      assert.ok(maxAtomic !== undefined && charged <= maxAtomic);
      assert.equal(await h.devnet.usdcBalance(buyer.address), before - charged);
      const spend = await (await payer.spendStore()).daySpend();
      assert.equal(spend.countedAtomic, charged);

      const strict = createMcpToolPayer({
        privateKey: buyer.privateKey,
        policy: { perCall: "10" },
        dataDir: "memory://",
      });
      const rowsBefore = (await h.ledger.payments.recent({ limit: 100 })).length;
      await assert.rejects(
        strict.callTool(
          client,
          { name: "summarize", arguments: { text: "another text", max_tokens: 20 } },
          { timeoutMs: 600_000 },
        ),
        (error: unknown) =>
          isTollgateError(error, "TOLLGATE_POLICY_REFUSED") &&
          error.details.rule === "perCall" &&
          error.details.limitAtomic === 10n,
      );
      await strict.close();
      assert.equal((await h.ledger.payments.recent({ limit: 100 })).length, rowsBefore);
    } finally {
      await payer.close();
      await dataDir.remove();
    }
  });

  test("a paid call its caller cancels before the tool answers is charged nothing: its result never reaches the caller", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const client = await connect("/report-mcp");
    const required = readPaymentRequiredResult(await call(client, "report", { key: "q3" }));
    assert.ok(required);
    const payload = await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload(required);
    const before = await h.devnet.usdcBalance(buyer.address);
    const controller = new AbortController();
    const pending = client
      .callTool(
        { name: "report", arguments: { key: "q3" }, _meta: { [MCP_PAYMENT_META_KEY]: payload } },
        undefined,
        { timeout: 600_000, signal: controller.signal },
      )
      .then(
        () => "answered",
        () => "cancelled",
      );
    const rowOf = async () =>
      (await h.ledger.payments.recent({ limit: 100 })).find(
        (payment) => payment.payer.toLowerCase() === buyer.address.toLowerCase(),
      );
    let row = await rowOf();
    for (let waited = 0; row === undefined && waited < 60_000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      row = await rowOf();
    }
    controller.abort("the agent moved on");
    assert.equal(await pending, "cancelled");
    const final = new Set(["settled", "failed", "debt", "zero"]);
    for (let waited = 0; !final.has(row?.status ?? "") && waited < 60_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      row = await rowOf();
    }
    assert.equal(row?.status, "failed", `row ${row?.status} (${row?.error})`);
    assert.equal(row?.chargeAtomic ?? 0n, 0n);
    assert.equal(await h.devnet.usdcBalance(buyer.address), before);
  });

  test("a paid call still running at the tool's time bound ends with a tool error and is charged nothing; what the handler answers later is dropped", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const client = await connect("/late-mcp");
    const required = readPaymentRequiredResult(await call(client, "report", { key: "q4" }));
    assert.ok(required);
    const payload = await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload(required);
    const before = await h.devnet.usdcBalance(buyer.address);
    const returned = new Promise<void>((resolve) => {
      lateTool.returned = resolve;
    });
    const result = await call(client, "report", { key: "q4" }, payload);
    assert.equal(result.isError, true);
    assert.match(textOf(result), /did not answer within 1000 ms; nothing was charged/);
    assert.ok(!textOf(result).includes("report on q4"));
    await returned;
    assert.equal(lateTool.signalAborted, true, "the handler's signal told it the call was over");
    const row = (await h.ledger.payments.recent({ limit: 100 })).find(
      (payment) => payment.payer.toLowerCase() === buyer.address.toLowerCase(),
    );
    // Observed before: the result came whole after 3 s, past the time bound the authorization was checked against.
    assert.equal(row?.status, "failed", `row ${row?.status} (${row?.error})`);
    assert.equal(row?.chargeAtomic ?? 0n, 0n);
    assert.equal(await h.devnet.usdcBalance(buyer.address), before);
  });

  test("a crowd opening sessions past the endpoint's bound never closes a session whose paid call is running: the call's result reaches its buyer, charged once", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const dataDir = await tempDataDir();
    const client = await connect("/slow-mcp");
    const payer = createMcpToolPayer({
      privateKey: buyer.privateKey,
      policy: { perCall: "$0.01", daily: "$1" },
      dataDir: dataDir.path,
    });
    try {
      const before = await h.devnet.usdcBalance(buyer.address);
      const paid = payer.callTool(
        client,
        { name: "lookup", arguments: { key: "toll" } },
        { server: `${h.gateway.url}/slow-mcp`, timeoutMs: 60_000 },
      );
      await slowTool.running;
      // Unpaid sessions, twice the bound: each past it closes an idle one, never the running call's.
      const initialize = {
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: {
          protocolVersion: "2025-03-26",
          capabilities: {},
          clientInfo: { name: "crowd", version: "1" },
        },
      };
      for (let index = 0; index < 6; index++) {
        const response = await fetch(`${h.gateway.url}/slow-mcp`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
          body: JSON.stringify(initialize),
        });
        await response.arrayBuffer();
        assert.equal(response.status, 200);
        assert.ok(response.headers.get("mcp-session-id"));
      }
      slowTool.release();
      const { result, settlement } = await paid;
      assert.equal(textOf(result), "value of toll");
      assert.ok(settlement?.success);
      assert.equal(BigInt(settlement.amount ?? "0"), lookupChargeAtomic);
      assert.equal(await h.devnet.usdcBalance(buyer.address), before - lookupChargeAtomic);
    } finally {
      slowTool.release();
      await payer.close();
      await dataDir.remove();
    }
  });
});
