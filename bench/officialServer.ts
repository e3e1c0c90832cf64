// The peer: the same backend behind the official x402 Hono middleware with the server-side upto scheme,
// settling the actual usage (Settlement-Overrides) through a facilitator over HTTP.
import { serve } from "@hono/node-server";
import { HTTPFacilitatorClient } from "@x402/core/http";
import type { HTTPRequestContext } from "@x402/core/server";
import { UptoEvmScheme } from "@x402/evm/upto/server";
import { paymentMiddleware, setSettlementOverrides, x402ResourceServer } from "@x402/hono";
import { Hono } from "hono";
import type { ModelConfig } from "../src/gateway/index.js";
import { quoteRequest } from "../src/gateway/index.js";
import { chargeAtomic } from "../src/pricing/index.js";

export type StartOfficialServerParameters = {
  facilitatorUrl: string;
  /** The bearer token the facilitator wants for /verify and /settle. */
  facilitatorToken: string;
  network: `eip155:${number}`;
  asset: string;
  assetDomain: { name: string; version: string };
  payTo: string;
  /** The same model configs as the gateway's: the maximum is priced the same way. */
  models: readonly ModelConfig[];
};

export type OfficialServer = { url: string; close(): Promise<void> };

type Usage = { prompt_tokens: number; completion_tokens: number };

/**
 * Starts the official stack on 127.0.0.1: `@x402/hono`'s `paymentMiddleware` on
 * POST /v1/chat/completions, an upto price equal to Tollgate's maximum for the request, and a handler
 * that reads the whole backend answer, meters its usage and sets the settlement amount to the actual
 * cost. The middleware buffers the response and settles before anything reaches the buyer.
 */
export async function startOfficialServer(
  parameters: StartOfficialServerParameters,
): Promise<OfficialServer> {
  const { network, asset, assetDomain, payTo } = parameters;
  const models = new Map(parameters.models.map((model) => [model.id, model]));
  const modelOf = (body: unknown): ModelConfig => {
    const id = (body as { model?: unknown } | undefined)?.model;
    const model = typeof id === "string" ? models.get(id) : undefined;
    if (!model) throw new Error(`official bench server: unknown model ${String(id)}`);
    return model;
  };
  const resourceServer = new x402ResourceServer(
    new HTTPFacilitatorClient({
      url: parameters.facilitatorUrl,
      createAuthHeaders: async () => {
        const auth = { authorization: `Bearer ${parameters.facilitatorToken}` };
        return { verify: auth, settle: auth, supported: {} };
      },
    }),
  );
  resourceServer.register(network, new UptoEvmScheme());

  const app = new Hono();
  app.use(
    paymentMiddleware(
      {
        "POST /v1/chat/completions": {
          accepts: {
            scheme: "upto",
            network,
            payTo,
            maxTimeoutSeconds: 300,
            price: async (context: HTTPRequestContext) => {
              const body = (await context.adapter.getBody?.()) as Record<string, unknown>;
              const quote = await quoteRequest(modelOf(body), "chat", body);
              return { amount: String(quote.maxAtomic ?? 0n), asset, extra: { ...assetDomain } };
            },
          },
          description: "chat completion, billed per token (official x402 middleware)",
          mimeType: "application/json",
        },
      },
      resourceServer,
    ),
  );
  app.post("/v1/chat/completions", async (c) => {
    const body = (await c.req.json()) as Record<string, unknown>;
    const model = modelOf(body);
    const quote = await quoteRequest(model, "chat", body);
    const upstream = await fetch(`${model.backend.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(quote.backendBody),
    });
    const text = await upstream.text();
    const usage = quote.stream ? usageOfSse(text) : (JSON.parse(text) as { usage?: Usage }).usage;
    const charge = chargeAtomic(
      { promptTokens: usage?.prompt_tokens ?? 0, completionTokens: usage?.completion_tokens ?? 0 },
      {
        inputPerMTokAtomic: model.inputPrice ?? 0n,
        outputPerMTokAtomic: model.outputPrice ?? 0n,
        fixedFeeAtomic: model.fixedFee,
        maxOutputTokens: model.maxOutputTokens,
      },
      quote.maxAtomic ?? 0n,
    );
    setSettlementOverrides(c, { amount: charge.toString() });
    return c.body(text, upstream.status as 200, {
      "content-type": upstream.headers.get("content-type") ?? "application/json",
    });
  });

  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => {
      resolve({
        url: `http://127.0.0.1:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
    server.once("error", reject);
  });
}

/** The usage object of an OpenAI SSE stream (the chunk sent with `stream_options.include_usage`). */
function usageOfSse(text: string): Usage | undefined {
  let usage: Usage | undefined;
  for (const line of text.split("\n")) {
    if (!line.startsWith("data: {")) continue;
    const chunk = JSON.parse(line.slice(6)) as { usage?: Usage | null };
    if (chunk.usage) usage = chunk.usage;
  }
  return usage;
}
