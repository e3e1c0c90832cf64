import assert from "node:assert/strict";
import { test } from "node:test";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { createMcpHttpHandler } from "./createMcpHttpHandler.js";

const initialize = () =>
  new Request("http://127.0.0.1/mcp", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: {
        protocolVersion: "2025-03-26",
        capabilities: {},
        clientInfo: { name: "crowd", version: "1" },
      },
    }),
  });

test("initializes answered together do not pass the session bound between them", async () => {
  const mcp = createMcpHttpHandler({
    createServer: () => new McpServer({ name: "bounded", version: "1.0.0" }),
    maxSessions: 2,
  });
  try {
    const answers = await Promise.all(Array.from({ length: 10 }, () => mcp(initialize())));
    const opened = answers.filter((answer) => answer.status === 200 && answer.headers.get("mcp-session-id"));
    const refused = answers.filter((answer) => answer.status === 503);
    assert.equal(opened.length, 2, `sessions opened: ${answers.map((answer) => answer.status).join(",")}`);
    assert.equal(refused.length, 8);
    assert.ok(refused.every((answer) => answer.headers.get("retry-after")));
    for (const answer of answers) await answer.body?.cancel();
  } finally {
    await mcp.close();
  }
});
