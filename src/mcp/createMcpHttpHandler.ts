import { randomUUID, timingSafeEqual } from "node:crypto";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";

export type CreateMcpHttpHandlerParameters = {
  /** A new MCP server for each session; `request` is the session's `initialize` request. */
  createServer: (request: Request) => McpServer;
  /** At most this many sessions at once; the oldest is closed past it. Default 100. */
  maxSessions?: number;
  /** When set, every request must carry `Authorization: Bearer <token>` (401 otherwise). */
  token?: string | undefined;
  /**
   * When set, the `Host` headers answered (others: 403), and a browser's `Origin` must be one of them
   * over http: a web page that rebinds its name to this address is not served.
   */
  allowedHosts?: (() => readonly string[]) | undefined;
};

/** A Streamable HTTP endpoint (web-standard `Request` → `Response`) that holds one MCP server per session. */
export type McpHttpHandler = ((request: Request) => Promise<Response>) & {
  /** Closes every session. */
  close(): Promise<void>;
};

/**
 * Serves MCP over Streamable HTTP with the SDK's transport: each `initialize` opens a session with
 * a server of its own, later requests find it by `mcp-session-id`. Sessions let a server ask the
 * client something mid-call (elicitation) and get the answer back.
 * @example
 * const mcp = createMcpHttpHandler({ createServer: () => myServer() });
 * app.all("/mcp", (c) => mcp(c.req.raw));
 */
export function createMcpHttpHandler({
  createServer,
  maxSessions = 100,
  token,
  allowedHosts,
}: CreateMcpHttpHandlerParameters): McpHttpHandler {
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  const refusal = (status: 401 | 403, message: string) =>
    Response.json({ jsonrpc: "2.0", error: { code: -32001, message }, id: null }, { status });
  const expected = token === undefined ? undefined : Buffer.from(`Bearer ${token}`);

  async function handleMcpRequest(request: Request): Promise<Response> {
    if (allowedHosts) {
      const hosts = allowedHosts();
      const host = request.headers.get("host") ?? "";
      if (!hosts.includes(host))
        return refusal(403, `this MCP server answers Host ${hosts.join(" or ")}, not ${host}`);
      const origin = request.headers.get("origin");
      if (origin !== null && !hosts.some((allowed) => origin === `http://${allowed}`))
        return refusal(403, `this MCP server does not answer requests from pages of ${origin}`);
    }
    if (expected) {
      const given = Buffer.from(request.headers.get("authorization") ?? "");
      if (given.length !== expected.length || !timingSafeEqual(given, expected))
        return refusal(
          401,
          "this MCP server wants Authorization: Bearer <token>, the token tollgate mcp printed at start (or TOLLGATE_MCP_TOKEN)",
        );
    }
    const sessionId = request.headers.get("mcp-session-id");
    if (sessionId) {
      const transport = sessions.get(sessionId);
      if (transport) return transport.handleRequest(request);
      return Response.json(
        {
          jsonrpc: "2.0",
          error: { code: -32001, message: `no MCP session ${sessionId} here (it ended); initialize again` },
          id: null,
        },
        { status: 404 },
      );
    }
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, transport);
        if (sessions.size > maxSessions) {
          const oldest = sessions.keys().next().value;
          if (oldest !== undefined) void sessions.get(oldest)?.close();
        }
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await createServer(request).connect(transport);
    const response = await transport.handleRequest(request);
    // Anything but a successful initialize leaves no session behind.
    if (!transport.sessionId || !sessions.has(transport.sessionId)) await transport.close();
    return response;
  }

  return Object.assign(handleMcpRequest, {
    async close() {
      await Promise.all([...sessions.values()].map((transport) => transport.close()));
      sessions.clear();
    },
  });
}
