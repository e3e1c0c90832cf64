import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { type CallToolResult, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { Hex } from "viem";
import { generatePrivateKey } from "viem/accounts";
import { formatMoney } from "../src/pricing/index.js";
import { tempDataDir } from "./support/buyerFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockCompletionText, mockModelId } from "./support/mockBackend.js";

const binPath = fileURLToPath(new URL("../bin/tollgate.js", import.meta.url));

let h: GatewayHarness;
let dataDir: Awaited<ReturnType<typeof tempDataDir>>;
const clients: Client[] = [];

before(async () => {
  h = await startGatewayHarness();
  dataDir = await tempDataDir();
});
after(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await h?.close();
  await dataDir?.remove();
});

/** Starts `tollgate mcp` over stdio with the official MCP client; its own spend store, the policy given. */
async function startTollgateMcp({
  privateKey,
  policy,
  name,
  elicitation,
}: {
  privateKey: Hex;
  policy: string;
  name: string;
  elicitation?: (message: string) => { action: "accept" | "decline"; content?: { approve: boolean } };
}): Promise<Client> {
  const policyFile = join(dataDir.path, `${name}.policy.yaml`);
  await writeFile(policyFile, policy);
  const client = new Client(
    { name: "test-agent", version: "1.0.0" },
    { capabilities: elicitation ? { elicitation: { form: {} } } : {} },
  );
  if (elicitation)
    client.setRequestHandler(ElicitRequestSchema, async (request) => elicitation(request.params.message));
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [binPath, "mcp", "--gateway", h.gateway.url, "--policy", policyFile],
      env: {
        ...env,
        TOLLGATE_PRIVATE_KEY: privateKey,
        TOLLGATE_DATA_DIR: join(dataDir.path, name),
        TOLLGATE_LOG_LEVEL: "warn",
      },
      stderr: "inherit",
    }),
    { timeout: 600_000 },
  );
  clients.push(client);
  return client;
}

const textOf = (result: CallToolResult) => (result.content[0] as { text?: string } | undefined)?.text ?? "";
// A generous bound per call: the machine running the tests may be busy.
const callTool = async (client: Client, name: string, args: Record<string, unknown> = {}) =>
  (await client.callTool({ name, arguments: args }, undefined, { timeout: 600_000 })) as CallToolResult;

/** What could move: both balances, and the gateway's payment rows. */
async function moneyState(payer: `0x${string}`) {
  return {
    payer: await h.devnet.usdcBalance(payer),
    payTo: await h.devnet.usdcBalance(h.devnet.accounts.payTo.address),
    rows: (await h.ledger.payments.recent({ limit: 1000 })).length,
  };
}

describe("tollgate mcp (stdio)", () => {
  test("lists its tools, and chat pays a gateway on the devnet within the policy; spend shows it", async () => {
    h.backend.set({ responseTokens: 9 });
    const buyer = h.devnet.accounts.buyers[0]!;
    const client = await startTollgateMcp({
      privateKey: buyer.privateKey,
      policy: 'perCall: "$0.05"\ndaily: "$1.00"\n',
      name: "chat",
    });
    const { tools } = await client.listTools(undefined, { timeout: 600_000 });
    assert.deepEqual(tools.map((tool) => tool.name).sort(), ["chat", "list_models", "pay", "spend"]);

    const models = await callTool(client, "list_models");
    assert.match(textOf(models), new RegExp(`${mockModelId} \\(chat\\)`));

    const before = await moneyState(buyer.address);
    const chat = await callTool(client, "chat", { prompt: "tell me about toll roads", max_tokens: 32 });
    assert.notEqual(chat.isError, true, textOf(chat));
    const answer = chat.structuredContent as {
      answer: string;
      model: string;
      payment: { success: boolean; amount: string; transaction: string };
    };
    assert.equal(answer.answer, mockCompletionText(9));
    assert.equal(answer.model, mockModelId);
    assert.equal(answer.payment.success, true);
    assert.match(answer.payment.transaction, /^0x[0-9a-f]{64}$/);
    const charged = BigInt(answer.payment.amount);
    assert.ok(charged > 0n);
    const afterChat = await moneyState(buyer.address);
    assert.equal(afterChat.payer, before.payer - charged);
    assert.equal(afterChat.payTo, before.payTo + charged);
    assert.equal(afterChat.rows, before.rows + 1);
    // The answer ends with the receipt line the CLI prints: charged, of the maximum authorized, saved.
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.equal(row?.transaction, answer.payment.transaction);
    const maxAtomic = row!.maxAtomic;
    assert.ok(
      textOf(chat).endsWith(
        `\n\n— paid ${formatMoney(charged)} of ${formatMoney(maxAtomic)} authorized (saved ${formatMoney(maxAtomic - charged)}) · tx ${answer.payment.transaction} · ${h.devnet.network}`,
      ),
      textOf(chat),
    );

    const spend = await callTool(client, "spend");
    const figures = spend.structuredContent as {
      countedAtomic: string;
      leftAtomic: string;
      dailyCapAtomic: string;
    };
    assert.equal(BigInt(figures.countedAtomic), charged);
    assert.equal(BigInt(figures.leftAtomic), BigInt(figures.dailyCapAtomic) - charged);
    assert.match(textOf(spend), /left/);
  });

  test("a perCall cap below the maximum refuses with a tool error naming the rule and the figures; nothing moves", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const client = await startTollgateMcp({
      privateKey: buyer.privateKey,
      policy: 'perCall: "10"\n',
      name: "strict",
    });
    const before = await moneyState(buyer.address);
    const refused = await callTool(client, "chat", { prompt: "tell me about toll roads", max_tokens: 32 });
    assert.equal(refused.isError, true);
    assert.match(textOf(refused), /refused by the spending policy \(perCall\)/);
    assert.match(textOf(refused), /\$0\.00001/);
    const details = refused.structuredContent as { rule: string; limitAtomic: string; askedAtomic: string };
    assert.equal(details.rule, "perCall");
    assert.equal(details.limitAtomic, "10");
    assert.ok(BigInt(details.askedAtomic) > 10n);
    assert.deepEqual(await moneyState(buyer.address), before);

    // pay goes through the same policy: the gateway's 402 asks for more than perCall.
    const body = JSON.stringify({
      model: mockModelId,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 16,
    });
    const paid = await callTool(client, "pay", { url: `${h.gateway.url}/v1/chat/completions`, body });
    assert.equal(paid.isError, true);
    assert.match(textOf(paid), /\(perCall\)/);
    assert.deepEqual(await moneyState(buyer.address), before);
  });

  test("above confirmAbove the person is asked through elicitation: accepted pays, declined refuses", async () => {
    h.backend.set({ responseTokens: 5 });
    const buyer = h.devnet.accounts.buyers[2]!;
    const questions: string[] = [];
    let approve = true;
    const client = await startTollgateMcp({
      privateKey: buyer.privateKey,
      policy: 'confirmAbove: "1"\n',
      name: "confirm",
      elicitation: (message) => {
        questions.push(message);
        return approve ? { action: "accept", content: { approve: true } } : { action: "decline" };
      },
    });
    const before = await moneyState(buyer.address);
    const accepted = await callTool(client, "chat", { prompt: "hello there", max_tokens: 16 });
    assert.notEqual(accepted.isError, true, textOf(accepted));
    assert.equal(questions.length, 1);
    assert.match(questions[0]!, /Authorize up to \$[0-9.]+ .* to http:\/\/127\.0\.0\.1:\d+/);
    const charged = BigInt((accepted.structuredContent as { payment: { amount: string } }).payment.amount);
    assert.equal((await moneyState(buyer.address)).payer, before.payer - charged);

    approve = false;
    const afterAccepted = await moneyState(buyer.address);
    const declined = await callTool(client, "chat", { prompt: "hello again", max_tokens: 16 });
    assert.equal(declined.isError, true);
    assert.equal(questions.length, 2);
    assert.match(textOf(declined), /\(confirmAbove\).*not confirmed/);
    assert.deepEqual(await moneyState(buyer.address), afterAccepted);
  });

  test("a payment the seller refuses is told in words, as the CLI tells it, with the seller's reason as data", async () => {
    // A wallet that holds nothing and approved nothing: the gateway's facilitator refuses its payment.
    const client = await startTollgateMcp({
      privateKey: generatePrivateKey(),
      policy: 'perCall: "$0.10"\n',
      name: "empty",
    });
    const body = JSON.stringify({
      model: mockModelId,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 16,
    });
    const refused = await callTool(client, "pay", { url: `${h.gateway.url}/v1/chat/completions`, body });
    assert.equal(refused.isError, true);
    assert.match(
      textOf(refused),
      /answered HTTP 402 Payment Required: the seller refused the payment: the buyer 0x[0-9a-fA-F]{40} /,
    );
    assert.doesNotMatch(textOf(refused), /x402Version/, "not the raw 402 body");
    const details = refused.structuredContent as { status: number; reason: string | null };
    assert.equal(details.status, 402);
    assert.ok(details.reason, "the seller's reason, as data");
  });

  test("above confirmAbove, a client that cannot ask gets a refusal", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    const client = await startTollgateMcp({
      privateKey: buyer.privateKey,
      policy: 'confirmAbove: "1"\n',
      name: "mute",
    });
    const before = await moneyState(buyer.address);
    const refused = await callTool(client, "chat", { prompt: "hello", max_tokens: 16 });
    assert.equal(refused.isError, true);
    assert.match(textOf(refused), /\(confirmAbove\).*this MCP client cannot ask a person/);
    assert.equal((refused.structuredContent as { rule: string }).rule, "confirmAbove");
    assert.deepEqual(await moneyState(buyer.address), before);
  });
});
