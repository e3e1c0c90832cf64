import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { isTollgateError } from "../errors/index.js";
import type { McpToolPayer } from "./createMcpToolPayer.js";
import { toolError } from "./paidTool.js";

export type RegisterUpstreamToolsParameters = {
  /** MCP servers (Streamable HTTP URLs) whose tools the agent may call, paid under the policy. */
  servers: readonly string[];
  payer: McpToolPayer;
  /** Turns a policy refusal into the tool error the agent sees. */
  refused: (error: unknown) => CallToolResult | undefined;
};

/**
 * Adds `mcp_list_tools` and `mcp_call_tool` to a server: the agent reaches the tools of other MCP
 * servers through it, and a tool that asks for payment (x402 MCP transport) is paid only within
 * the spending policy. Answers a function that closes the upstream connections.
 */
export function registerUpstreamTools(
  server: McpServer,
  { servers, payer, refused }: RegisterUpstreamToolsParameters,
): () => Promise<void> {
  const connections = new Map<string, Promise<Client>>();
  const connect = (url: string) => {
    let connection = connections.get(url);
    if (!connection) {
      connection = (async () => {
        const client = new Client({ name: "tollgate-mcp", version: "1.0.0" });
        await client.connect(new StreamableHTTPClientTransport(new URL(url)));
        return client;
      })();
      connection.catch(() => connections.delete(url));
      connections.set(url, connection);
    }
    return connection;
  };
  const serverSchema = z
    .string()
    .optional()
    .describe(`The MCP server's URL; default the first of: ${servers.join(", ")}`);

  server.registerTool(
    "mcp_list_tools",
    {
      description: "Lists the tools of the MCP servers Tollgate reaches for you, with their input schemas.",
      inputSchema: { server: serverSchema },
    },
    async ({ server: url }) => {
      const target = url ?? servers[0];
      if (!target || !servers.includes(target)) return toolError(unknownServer(url, servers));
      const { tools } = await (await connect(target)).listTools();
      return {
        content: [
          { type: "text", text: tools.map((tool) => `${tool.name}: ${tool.description ?? ""}`).join("\n") },
        ],
        structuredContent: { server: target, tools },
      };
    },
  );

  server.registerTool(
    "mcp_call_tool",
    {
      description:
        "Calls a tool of an MCP server Tollgate reaches for you; a tool that asks for payment (x402) is paid within the spending policy.",
      inputSchema: {
        server: serverSchema,
        name: z.string().min(1).describe("The tool's name (see mcp_list_tools)"),
        arguments: z.record(z.string(), z.unknown()).optional().describe("The tool's arguments"),
      },
    },
    async ({ server: url, name, arguments: args }) => {
      const target = url ?? servers[0];
      if (!target || !servers.includes(target)) return toolError(unknownServer(url, servers));
      try {
        const { result } = await payer.callTool(
          await connect(target),
          { name, arguments: args },
          { server: target },
        );
        return result;
      } catch (error) {
        const refusal = refused(error);
        if (refusal) return refusal;
        const message = isTollgateError(error) ? error.shortMessage : (error as Error).message;
        return toolError(`calling ${name} on ${target} failed: ${message}`);
      }
    },
  );

  return async () => {
    const open = [...connections.values()];
    connections.clear();
    await Promise.all(open.map(async (connection) => (await connection.catch(() => undefined))?.close()));
  };
}

function unknownServer(url: string | undefined, servers: readonly string[]): string {
  if (servers.length === 0) return "no MCP server is configured: start tollgate mcp with --mcp-server URL";
  return `${url} is not one of the configured MCP servers (${servers.join(", ")})`;
}
