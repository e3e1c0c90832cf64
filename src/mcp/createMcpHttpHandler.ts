import { randomUUID, timingSafeEqual } from "node:crypto";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";

export type CreateMcpHttpHandlerParameters = {
  /** A new MCP server for each session; `request` is the session's `initialize` request. */
  createServer: (request: Request) => McpServer;
  /**
   * At most this many sessions at once. Past it, a new session closes the least recently used one with no
   * call in flight (never one whose paid call is running: its result, already charged, would be lost); when
   * every session has a call in flight, the new one is refused (503). Default 100.
   */
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
  /** The sessions, least recently used first. */
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  /** Calls (POSTs) of each session whose answer has not ended yet. */
  const inFlight = new Map<string, number>();
  /** Sessions whose initialize is being answered, not yet stored. */
  let opening = 0;
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
      if (transport) {
        sessions.delete(sessionId);
        sessions.set(sessionId, transport);
        return request.method === "POST"
          ? answerCall(sessionId, transport, request)
          : transport.handleRequest(request);
      }
      return Response.json(
        {
          jsonrpc: "2.0",
          error: { code: -32001, message: `no MCP session ${sessionId} here (it ended); initialize again` },
          id: null,
        },
        { status: 404 },
      );
    }
    // Sessions being opened count too: initializes handled together must not pass the bound between them.
    if (sessions.size + opening >= maxSessions) {
      const idle = [...sessions.keys()].find((id) => !inFlight.has(id));
      if (idle === undefined)
        return Response.json(
          {
            jsonrpc: "2.0",
            error: {
              code: -32001,
              message: `all ${maxSessions} MCP sessions have a call in flight; try again`,
            },
            id: null,
          },
          { status: 503, headers: { "retry-after": "1" } },
        );
      const evicted = sessions.get(idle);
      sessions.delete(idle);
      void evicted?.close();
    }
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        sessions.set(id, transport);
      },
      onsessionclosed: (id) => {
        sessions.delete(id);
        inFlight.delete(id);
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) {
        sessions.delete(transport.sessionId);
        inFlight.delete(transport.sessionId);
      }
    };
    opening++;
    try {
      await createServer(request).connect(transport);
      const response = await transport.handleRequest(request);
      // Anything but a successful initialize leaves no session behind.
      if (!transport.sessionId || !sessions.has(transport.sessionId)) await transport.close();
      return response;
    } finally {
      opening--;
    }
  }

  /** A call on a session, counted in flight until its answer (a JSON body or an SSE stream) ends or is dropped. */
  async function answerCall(
    sessionId: string,
    transport: WebStandardStreamableHTTPServerTransport,
    request: Request,
  ): Promise<Response> {
    inFlight.set(sessionId, (inFlight.get(sessionId) ?? 0) + 1);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const left = (inFlight.get(sessionId) ?? 1) - 1;
      if (left > 0) inFlight.set(sessionId, left);
      else inFlight.delete(sessionId);
    };
    let response: Response;
    try {
      response = await transport.handleRequest(request);
    } catch (error) {
      end();
      throw error;
    }
    if (!response.body) {
      end();
      return response;
    }
    const reader = response.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            end();
            controller.close();
          } else controller.enqueue(value);
        } catch (error) {
          end();
          controller.error(error);
        }
      },
      cancel(reason) {
        end();
        return reader.cancel(reason);
      },
    });
    return new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  return Object.assign(handleMcpRequest, {
    async close() {
      await Promise.all([...sessions.values()].map((transport) => transport.close()));
      sessions.clear();
    },
  });
}
