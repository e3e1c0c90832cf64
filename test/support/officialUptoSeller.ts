import { serve } from "@hono/node-server";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { UptoEvmScheme } from "@x402/evm/upto/server";
import { declareEip2612GasSponsoringExtension } from "@x402/extensions";
import { paymentMiddleware, setSettlementOverrides, x402ResourceServer } from "@x402/hono";
import { Hono } from "hono";
import { costAtomic } from "../../src/pricing/index.js";
import { facilitatorAuth } from "./facilitatorToken.js";

export type OfficialUptoSellerParameters = {
  facilitatorUrl: string;
  network: `eip155:${number}`;
  asset: `0x${string}`;
  payTo: `0x${string}`;
  /** The upto maximum of every request, in atomic units. */
  maxAtomic: bigint;
  prices: { inputPerMTokAtomic: bigint; outputPerMTokAtomic: bigint; fixedFeeAtomic: bigint };
  /** The usage every answer reports. */
  usage: { promptTokens: number; completionTokens: number };
  /**
   * Declares `eip2612GasSponsoring` in its 402, with the token's EIP-712 domain, so a wallet that
   * never approved Permit2 pays with a signed permit.
   */
  eip2612?: { name: string; version: string };
};

/**
 * A seller built only from the official pieces: `@x402/hono`'s `paymentMiddleware`, `@x402/core`'s
 * resource server with an HTTP facilitator client, and `@x402/evm`'s server-side `UptoEvmScheme`.
 * It prices a fixed maximum, answers an OpenAI-style completion, and settles the usage's cost
 * through `setSettlementOverrides` (the official way to settle less than the maximum).
 */
export async function startOfficialUptoSeller(parameters: OfficialUptoSellerParameters) {
  const { network, asset, payTo, maxAtomic, prices, usage, eip2612 } = parameters;
  let served = 0;
  const resourceServer = new x402ResourceServer(
    new HTTPFacilitatorClient({
      url: parameters.facilitatorUrl,
      createAuthHeaders: async () => ({ verify: facilitatorAuth, settle: facilitatorAuth, supported: {} }),
    }),
  ).register(network, new UptoEvmScheme());
  const chargeAtomic = costAtomic(usage, { ...prices, maxOutputTokens: 1 });
  const app = new Hono();
  app.use(
    paymentMiddleware(
      {
        "POST /v1/chat/completions": {
          accepts: {
            scheme: "upto",
            network,
            payTo,
            price: { asset, amount: maxAtomic.toString(), ...(eip2612 ? { extra: eip2612 } : {}) },
            maxTimeoutSeconds: 120,
          },
          ...(eip2612 ? { extensions: declareEip2612GasSponsoringExtension() } : {}),
          description: "chat completion, billed by usage",
          mimeType: "application/json",
        },
      },
      resourceServer,
    ),
  );
  app.post("/v1/chat/completions", (c) => {
    served++;
    setSettlementOverrides(c, { amount: chargeAtomic.toString() });
    return c.json({
      id: "chatcmpl-official",
      object: "chat.completion",
      created: 0,
      model: "official-model",
      choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
      usage: {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.promptTokens + usage.completionTokens,
      },
    });
  });
  return new Promise<{ url: string; chargeAtomic: bigint; readonly served: number; close(): Promise<void> }>(
    (resolve) => {
      const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => {
        resolve({
          url: `http://127.0.0.1:${info.port}`,
          chargeAtomic,
          /** Requests its handler answered: each ran the inference it sells. */
          get served() {
            return served;
          },
          close: () =>
            new Promise<void>((done) => {
              server.close(() => done());
              (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
            }),
        });
      });
    },
  );
}
