import { randomBytes } from "node:crypto";
import { serve } from "@hono/node-server";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";
import { createBuyerMcpServer, createMcpHttpHandler } from "../mcp/index.js";
import { exitCodes, parseFlags, printError, printLine, waitForShutdownSignal } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { loadPolicy, openCliSpendStore } from "./payCommand.js";
import { readPrivateKey } from "./readPrivateKey.js";

const flagsSchema = z.object({
  gateway: z.array(z.url()).default([]),
  "mcp-server": z.array(z.url()).default([]),
  policy: z.string().optional(),
  "private-key": z.string().optional(),
  rpc: z.url().optional(),
  http: z.boolean().default(false),
  host: z.string().default("127.0.0.1"),
  port: z.coerce.number().int().min(0).max(65535).default(4023),
});

/** `tollgate mcp`: the buyer's MCP server (stdio, or Streamable HTTP with --http). */
export async function mcpCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags("mcp", argv, commandFlags.mcp, flagsSchema);
  const privateKey = readPrivateKey(
    flags["private-key"] ?? process.env.TOLLGATE_PRIVATE_KEY,
    "--private-key or TOLLGATE_PRIVATE_KEY",
  );
  const policy = await loadPolicy(flags.policy ?? process.env.TOLLGATE_POLICY);
  // The store opens while the client connects: an agent's initialize is answered at once.
  const store = openCliSpendStore();
  store.catch(() => undefined);
  const createServer = () =>
    createBuyerMcpServer({
      privateKey,
      gateways: flags.gateway,
      mcpServers: flags["mcp-server"],
      policy,
      store,
      rpcUrl: flags.rpc,
    });
  try {
    if (!flags.http) {
      // stdout carries the protocol: nothing else may be printed there.
      const server = createServer();
      await server.connect(new StdioServerTransport());
      await new Promise<void>((resolve) => {
        process.stdin.once("end", resolve);
        process.stdin.once("close", resolve);
        void waitForShutdownSignal().then(() => resolve());
      });
      await server.close();
      return exitCodes.ok;
    }
    // Whoever reaches the port could make this wallet pay, and answer its confirmations: a token is
    // required, and on a loopback address only the loopback names are answered (no DNS rebinding).
    const token = process.env.TOLLGATE_MCP_TOKEN || randomBytes(24).toString("base64url");
    let port = flags.port;
    const loopback = ["127.0.0.1", "localhost", "::1"].includes(flags.host);
    const handler = createMcpHttpHandler({
      createServer,
      token,
      allowedHosts: loopback ? () => [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`] : undefined,
    });
    const listening = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
      const instance = serve({ fetch: handler, hostname: flags.host, port: flags.port }, () =>
        resolve(instance),
      );
      instance.once("error", reject);
    });
    const address = listening.address();
    port = typeof address === "object" && address ? address.port : flags.port;
    printLine(JSON.stringify({ mcpUrl: `http://${flags.host}:${port}/mcp`, token }));
    printError(
      `tollgate mcp: serving MCP over Streamable HTTP at http://${flags.host}:${port}/mcp; requests must carry Authorization: Bearer ${token} (TOLLGATE_MCP_TOKEN sets it)`,
    );
    await waitForShutdownSignal();
    await handler.close();
    await new Promise<void>((resolve) => {
      listening.close(() => resolve());
      (listening as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    });
    return exitCodes.ok;
  } finally {
    await (await store.catch(() => undefined))?.close();
  }
}
