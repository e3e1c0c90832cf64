// The floor of any gateway built like Tollgate's: the same HTTP server (Hono on @hono/node-server) and
// the same backend client (`createNodeHttpFetch`, keep-alive `node:http`), forwarding a request to
// its model's backend and the answer back as it comes — with no pricing, payment, metering or ledger.
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createNodeHttpFetch } from "../src/chain/index.js";

export type BareProxy = { url: string; close(): Promise<void> };

/** Serves `POST /v1/chat/completions`, sent on to the backend of the body's `model` (`backendUrls`: model → base URL with `/v1`). */
export async function startBareProxy(backendUrls: Record<string, string>): Promise<BareProxy> {
  const backendFetch = createNodeHttpFetch({ body: "stream", maxSockets: Number.POSITIVE_INFINITY });
  const app = new Hono();
  app.post("/v1/chat/completions", async (c) => {
    const body = await c.req.text();
    const model = (JSON.parse(body) as { model?: string }).model ?? "";
    const baseUrl = backendUrls[model];
    if (!baseUrl) return c.json({ error: { message: `no backend for ${model}` } }, 404);
    const answer = await backendFetch(`${baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const contentType = answer.headers.get("content-type");
    return new Response(answer.body, {
      status: answer.status,
      headers: contentType ? { "content-type": contentType } : {},
    });
  });
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const instance = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(instance));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
