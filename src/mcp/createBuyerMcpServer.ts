import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { z } from "zod";
import { explainHttpFailure } from "../buyer/explainHttpFailure.js";
import {
  apiBaseUrl,
  type BuyerEvent,
  type ConfirmPayment,
  chooseProvider,
  createPayingFetch,
  describeFetchFailure,
  fetchProviderModels,
  formatReceiptLine,
  type PolicyRefusal,
  type ProviderModel,
  type SpendingPolicy,
  type SpendStore,
} from "../buyer/index.js";
import { isTollgateError } from "../errors/index.js";
import { describeUnitPrices, formatMoney, unitPricesToStrings } from "../pricing/index.js";
import {
  decodePaymentResponseHeader,
  PAYMENT_RESPONSE_HEADER,
  type SettleResponse,
} from "../protocol/index.js";
import { createMcpToolPayer } from "./createMcpToolPayer.js";
import { toolError } from "./paidTool.js";
import { registerUpstreamTools } from "./registerUpstreamTools.js";
import { spendReport } from "./spendReport.js";

export type CreateBuyerMcpServerParameters = {
  privateKey: Hex;
  /** Gateways `chat` and `list_models` use. */
  gateways: readonly string[];
  policy?: SpendingPolicy | undefined;
  /** The spend store the caps are counted in (shared by every session); may still be opening. */
  store: SpendStore | Promise<SpendStore>;
  rpcUrl?: string | undefined;
  /** The `fetch` underneath. Default: the global one. */
  fetch?: typeof fetch | undefined;
  /** MCP servers (Streamable HTTP URLs) the agent reaches through `mcp_list_tools` / `mcp_call_tool`, paid tools under the policy. */
  mcpServers?: readonly string[] | undefined;
  /** Name and version the server announces. */
  version?: string | undefined;
};

/** Longest body a tool answer carries, in characters. */
const MAX_BODY_CHARS = 100_000;
/** Receipts kept for the answers still to be written. */
const MAX_RECEIPTS_KEPT = 100;

/**
 * The buyer's MCP server (`tollgate mcp`): gives an agent `chat` (paid inference, routed to the
 * cheapest gateway within the policy), `pay` (one paid HTTP request), `spend` (today's spend and
 * what is left under each cap) and `list_models`. Every payment is checked against the policy
 * before anything is signed; a refusal is a tool error naming the rule and the figures. A maximum
 * above `confirmAbove` is put to the person through MCP elicitation, and refused when the client
 * cannot ask.
 */
export function createBuyerMcpServer(parameters: CreateBuyerMcpServerParameters): McpServer {
  const { gateways, policy, store } = parameters;
  const server = new McpServer({ name: "tollgate", version: parameters.version ?? "0.1.0" });
  const baseFetch = parameters.fetch ?? globalThis.fetch;

  const confirm: ConfirmPayment = async (ask) => {
    if (!server.server.getClientCapabilities()?.elicitation) return false;
    const expected =
      ask.expectedAtomic === undefined ? "" : ` (expected at most ${formatMoney(ask.expectedAtomic)})`;
    let answer: Awaited<ReturnType<typeof server.server.elicitInput>>;
    try {
      answer = await server.server.elicitInput({
        message: `Authorize up to ${formatMoney(ask.maxAtomic)}${expected}${ask.depositAtomic !== undefined ? `, with a channel deposit of ${formatMoney(ask.depositAtomic)} (refundable)` : ""}${ask.authorizedAtomic !== undefined ? `, besides ${formatMoney(ask.authorizedAtomic)} already authorized for this request` : ""} to ${ask.origin}, paid to ${ask.payTo} on ${ask.network}? Your policy asks above ${formatMoney(ask.limitAtomic)}.`,
        requestedSchema: {
          type: "object",
          properties: { approve: { type: "boolean", title: "Authorize this payment" } },
          required: ["approve"],
        },
      });
    } catch {
      // The client cannot answer a form (or the person went away): not confirmed.
      return false;
    }
    return answer.action === "accept" && answer.content?.approve === true;
  };
  // Each payment's receipt, for its answer's receipt line: the line the CLI prints.
  const receiptsByPayment = new Map<string, Extract<BuyerEvent, { type: "receipt" }>>();
  const payingFetch = createPayingFetch({
    privateKey: parameters.privateKey,
    policy,
    rpcUrl: parameters.rpcUrl,
    store,
    confirm,
    fetch: baseFetch,
    onEvent(event) {
      if (event.type !== "receipt") return;
      receiptsByPayment.set(event.paymentId, event);
      // One per answer, taken when it is written; an answer never written leaves its own behind.
      if (receiptsByPayment.size > MAX_RECEIPTS_KEPT)
        receiptsByPayment.delete(receiptsByPayment.keys().next().value as string);
    },
  });
  /** The receipt line of a paid response (none for a response no payment was sent with). */
  const takeReceiptLine = (response: Response) => {
    const paymentId = payingFetch.paymentIdOf(response);
    if (paymentId === undefined) return undefined;
    const receipt = receiptsByPayment.get(paymentId);
    receiptsByPayment.delete(paymentId);
    return receipt
      ? formatReceiptLine(receipt)
      : "no receipt arrived; the maximum stays reserved until the authorization expires";
  };

  server.registerTool(
    "chat",
    {
      description:
        "Asks a model one question and pays per token (x402) through the configured gateways, choosing the cheapest within the spending policy. Answers the text and what it cost.",
      inputSchema: {
        prompt: z.string().min(1).describe("The question or instruction"),
        model: z
          .string()
          .min(1)
          .optional()
          .describe("A model id (see list_models); default any chat model listed"),
        max_tokens: z.number().int().positive().optional().describe("Longest answer, in tokens"),
      },
    },
    async ({ prompt, model, max_tokens }) => {
      const body: Record<string, unknown> = {
        messages: [{ role: "user", content: prompt }],
        stream: false,
        ...(max_tokens === undefined ? {} : { max_tokens }),
      };
      const models = model ? [model] : await chatModelIds(gateways, baseFetch);
      if (models.length === 0)
        return toolError(`none of the gateways (${gateways.join(", ")}) lists a chat model`);
      const latencies = await (await store).providerLatencies();
      const route = await chooseProvider({ gateways, models, body, policy, latencies, fetch: baseFetch });
      if (!route.chosen) {
        const refusal = route.candidates.find((candidate) => candidate.refusal)?.refusal;
        return refusal
          ? refusedResult(refusal, route.reason)
          : toolError(`no gateway can serve this: ${route.reason}`);
      }
      const chosen = route.chosen.model;
      payingFetch.learnPrices(route.candidates.map((candidate) => candidate.model));
      return payAndAnswer(
        `${chosen.baseUrl}/chat/completions`,
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...body, model: chosen.id }),
        },
        (text) => {
          const completion = JSON.parse(text) as { choices?: Array<{ message?: { content?: unknown } }> };
          const content = completion.choices?.[0]?.message?.content;
          return {
            answer: typeof content === "string" ? content : "",
            model: chosen.id,
            provider: chosen.baseUrl,
            route: route.reason,
          };
        },
      );
    },
  );

  server.registerTool(
    "pay",
    {
      description:
        "Sends one HTTP request and pays its x402 402 (upto, exact, or a voucher on a payment channel, depositing into it first when needed) within the spending policy. Answers the status, the body and the payment.",
      inputSchema: {
        url: z.url().describe("The URL to request"),
        method: z.string().optional().describe("Default GET, or POST with a body"),
        body: z.string().optional().describe("The request body (JSON is sent as application/json)"),
        headers: z.record(z.string(), z.string()).optional().describe("Request headers"),
      },
    },
    async ({ url, method, body, headers }) => {
      const sent = new Headers(headers);
      if (body !== undefined && !sent.has("content-type") && /^\s*[[{]/.test(body))
        sent.set("content-type", "application/json");
      return payAndAnswer(url, {
        method: method?.toUpperCase() ?? (body === undefined ? "GET" : "POST"),
        headers: sent,
        body,
      });
    },
  );

  server.registerTool(
    "spend",
    {
      description:
        "Today's spend (UTC) per provider, and what is left under each cap of the spending policy.",
    },
    async () => {
      const report = spendReport(await (await store).daySpend(), policy);
      return { content: [{ type: "text", text: report.text }], structuredContent: report.figures };
    },
  );

  server.registerTool(
    "list_models",
    { description: "The models the configured gateways offer, with their prices." },
    async () => {
      const listed: Array<Record<string, unknown>> = [];
      const lines: string[] = [];
      for (const gateway of gateways) {
        let models: ProviderModel[];
        try {
          models = await fetchProviderModels(gateway, { fetch: baseFetch });
        } catch (error) {
          lines.push(`${gateway}: unreachable (${(error as Error).message})`);
          continue;
        }
        for (const model of models) {
          const images = Object.entries(model.imagePrices ?? {}).map(
            ([size, priceAtomic]) => `${formatMoney(priceAtomic)} / image ${size}`,
          );
          const unitPrices = model.price?.units ? describeUnitPrices(model.price.units) : undefined;
          const price =
            images.length > 0
              ? [...images, ...(unitPrices && unitPrices !== "free" ? [unitPrices] : [])].join(", ")
              : model.price
                ? (unitPrices ??
                  `${formatMoney(model.price.inputPerMTokAtomic)} / 1M input tokens, ${formatMoney(model.price.outputPerMTokAtomic)} / 1M output tokens`)
                : model.exactPriceAtomic !== undefined
                  ? `${formatMoney(model.exactPriceAtomic)} a request`
                  : "no price listed";
          lines.push(`${model.id} (${model.kind}) at ${model.baseUrl}: ${price}`);
          listed.push({
            id: model.id,
            kind: model.kind,
            gateway: model.baseUrl,
            network: model.network,
            schemes: model.schemes,
            inputPerMTokAtomic: model.price?.inputPerMTokAtomic.toString(),
            outputPerMTokAtomic: model.price?.outputPerMTokAtomic.toString(),
            exactPriceAtomic: model.exactPriceAtomic?.toString(),
            units: model.price?.units ? unitPricesToStrings(model.price.units) : undefined,
            imagePrices: model.imagePrices
              ? Object.fromEntries(Object.entries(model.imagePrices).map(([size, p]) => [size, p.toString()]))
              : undefined,
          });
        }
      }
      return {
        content: [{ type: "text", text: lines.join("\n") || "no gateway configured" }],
        structuredContent: { models: listed },
      };
    },
  );

  /** A policy refusal as the agent sees it; undefined for any other error. */
  function policyRefusalResult(error: unknown): CallToolResult | undefined {
    if (!isTollgateError(error, "TOLLGATE_POLICY_REFUSED")) return undefined;
    const refusal = { ...(error.details as PolicyRefusal), message: error.shortMessage };
    const cannotAsk = refusal.rule === "confirmAbove" && !server.server.getClientCapabilities()?.elicitation;
    return refusedResult(
      cannotAsk
        ? {
            ...refusal,
            message: refusal.message.replace(
              / and was not confirmed$/,
              " and this MCP client cannot ask a person (it does not support elicitation)",
            ),
          }
        : refusal,
    );
  }

  if (parameters.mcpServers?.length) {
    const payer = createMcpToolPayer({
      privateKey: parameters.privateKey,
      policy,
      store,
      confirm,
      rpcUrl: parameters.rpcUrl,
    });
    const closeUpstream = registerUpstreamTools(server, {
      servers: parameters.mcpServers,
      payer,
      refused: policyRefusalResult,
    });
    const onclose = server.server.onclose;
    server.server.onclose = () => {
      onclose?.();
      void closeUpstream();
    };
  }

  async function payAndAnswer(
    url: string,
    init: RequestInit,
    readAnswer?: (text: string) => Record<string, unknown>,
  ): Promise<CallToolResult> {
    let response: Response;
    try {
      response = await payingFetch(url, init);
    } catch (error) {
      const refusal = policyRefusalResult(error);
      if (refusal) return refusal;
      const message =
        describeFetchFailure(error) ??
        (isTollgateError(error) ? error.shortMessage : (error as Error).message);
      return toolError(`the paid request failed: ${message}`);
    }
    const text = await response.text();
    await payingFetch.idle();
    const payment = paymentOf(response);
    const receiptLine = takeReceiptLine(response);
    if (!response.ok) {
      // Told in words, as the CLI tells it (a refused payment: why, with its figures), the body kept as data.
      const failure = await explainHttpFailure({
        status: response.status,
        headers: response.headers,
        body: text,
        payer: privateKeyToAccount(parameters.privateKey).address,
        rpcUrl: parameters.rpcUrl,
      });
      return toolError(`${url} answered ${failure.statusLine}: ${failure.message}`, {
        status: response.status,
        reason: failure.reason ?? null,
        body: text.slice(0, 2000),
        payment: payment ?? null,
      });
    }
    let answer: Record<string, unknown> = { body: text.slice(0, MAX_BODY_CHARS) };
    if (readAnswer) {
      try {
        answer = readAnswer(text);
      } catch {
        // Not the JSON expected: hand back the body as it came.
      }
    }
    const paidLine = receiptLine ? `\n\n— ${receiptLine}` : "";
    const shown = typeof answer.answer === "string" ? answer.answer : String(answer.body ?? "");
    return {
      content: [{ type: "text", text: `${shown}${paidLine}` }],
      structuredContent: { status: response.status, ...answer, payment: payment ?? null },
    };
  }

  return server;
}

/** The settlement a paid response carries in `PAYMENT-RESPONSE`, as plain JSON. */
function paymentOf(response: Response): SettleResponse | undefined {
  const header = response.headers.get(PAYMENT_RESPONSE_HEADER);
  if (!header) return undefined;
  const decoded = decodePaymentResponseHeader(header);
  return decoded.ok ? decoded.settleResponse : undefined;
}

/** A policy refusal as a tool error: the rule, the message with its figures, the figures as data. */
function refusedResult(refusal: PolicyRefusal, context?: string): CallToolResult {
  const figures = Object.fromEntries(
    Object.entries(refusal).map(([key, value]) => [
      key,
      typeof value === "bigint" ? value.toString() : value,
    ]),
  );
  return toolError(
    `refused by the spending policy (${refusal.rule}): ${refusal.message}; nothing was signed${context ? `. ${context}` : ""}`,
    { refused: true, ...figures },
  );
}

/** Every chat model the gateways list. */
async function chatModelIds(gateways: readonly string[], fetchImpl: typeof fetch): Promise<string[]> {
  const listings = await Promise.all(
    gateways.map((gateway) => fetchProviderModels(apiBaseUrl(gateway), { fetch: fetchImpl }).catch(() => [])),
  );
  return [
    ...new Set(
      listings
        .flat()
        .filter((model) => model.kind === "chat")
        .map((model) => model.id),
    ),
  ];
}
