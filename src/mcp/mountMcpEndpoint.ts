import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Hono } from "hono";
import { createMcpHttpHandler, type McpHttpHandler } from "./createMcpHttpHandler.js";

export type MountMcpEndpointParameters = {
  /** Default `/mcp`. */
  path?: string;
  /** A server for each session; `endpointUrl` is this endpoint's URL as the client reached it. */
  createServer: (endpointUrl: string) => McpServer;
  /** At most this many sessions at once (see `createMcpHttpHandler`). Default 100. */
  maxSessions?: number;
};

/**
 * Serves MCP over Streamable HTTP at `path` of a Hono app (the gateway's, through `startGateway`'s
 * `routes`); answers the handler, to close its sessions on shutdown.
 * @example
 * startGateway({ config, routes: (app, billing) => { mcp = mountMcpEndpoint(app, { createServer: (url) => tools(billing, url) }); } });
 */
export function mountMcpEndpoint(
  app: Hono,
  { path = "/mcp", createServer, maxSessions }: MountMcpEndpointParameters,
): McpHttpHandler {
  const handler = createMcpHttpHandler({
    createServer: (request) => {
      const url = new URL(request.url);
      return createServer(`${url.origin}${url.pathname}`);
    },
    ...(maxSessions === undefined ? {} : { maxSessions }),
  });
  app.all(path, (c) => handler(c.req.raw));
  return handler;
}
