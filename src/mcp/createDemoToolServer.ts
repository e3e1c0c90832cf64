import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Billing } from "../gateway/index.js";
import { countTextTokens } from "../pricing/index.js";
import { paidInferenceTool } from "./paidInferenceTool.js";
import { paidTool } from "./paidTool.js";

export type CreateDemoToolServerParameters = {
  billing: Billing;
  /** The MCP endpoint's URL (names the tools' resources). */
  endpointUrl: string;
  /** The chat model `summarize` runs on; one the billing serves. */
  model: string;
  /** The fixed price of `count_tokens` (atomic units); default 1000 ($0.001 in USDC). */
  countTokensPriceAtomic?: bigint;
};

/**
 * The example paid MCP server of `tollgate dev`: `summarize` (upto: a chat completion on `model`,
 * charged by the tokens it used) and `count_tokens` (exact: a fixed price per call).
 */
export function createDemoToolServer({
  billing,
  endpointUrl,
  model,
  countTokensPriceAtomic = 1000n,
}: CreateDemoToolServerParameters): McpServer {
  const server = new McpServer({ name: "tollgate-demo-tools", version: "1.0.0" });
  server.registerTool(
    "summarize",
    {
      description: `Summarizes a text with the model ${model}. Paid per token with x402 (upto): the call authorizes a maximum and is charged the tokens it used.`,
      inputSchema: {
        text: z.string().min(1).describe("The text to summarize"),
        max_tokens: z.number().int().positive().max(1024).optional().describe("Longest summary, in tokens"),
      },
    },
    paidInferenceTool({
      billing,
      endpointUrl,
      name: "summarize",
      chatRequest: ({ text, max_tokens }: { text: string; max_tokens?: number | undefined }) => ({
        model,
        messages: [
          { role: "system", content: "Summarize the user's text in a few sentences." },
          { role: "user", content: text },
        ],
        max_tokens: max_tokens ?? 128,
      }),
    }),
  );
  server.registerTool(
    "count_tokens",
    {
      description: "Counts the tokens of a text (o200k). A fixed price per call with x402 (exact).",
      inputSchema: { text: z.string().describe("The text to count") },
    },
    paidTool({
      billing,
      name: "count_tokens",
      resourceUrl: `${endpointUrl.replace(/\/+$/, "")}/tools/count_tokens`,
      price: { scheme: "exact", priceAtomic: countTokensPriceAtomic },
      handler: async ({ text }: { text: string }) => {
        const tokens = countTextTokens(text);
        return {
          result: { content: [{ type: "text", text: String(tokens) }], structuredContent: { tokens } },
        };
      },
    }),
  );
  return server;
}
