import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { isTollgateError, type Logger, silentLogger } from "../errors/index.js";
import { EXPOSED_PAYMENT_HEADERS } from "../protocol/index.js";
import type { Billing } from "./createBilling.js";
import { type TollgateContext, tollgateHono } from "./honoBilling.js";
import { proxyToBackend } from "./proxyToBackend.js";

export type CreateGatewayAppParameters = {
  billing: Billing;
  logger?: Logger;
  /** Largest request body on the inference routes, in bytes; larger gets 413. Default 4 MiB. */
  maxBodyBytes?: number;
};

/**
 * The gateway: an OpenAI-compatible API in front of the configured backends, every inference
 * route billed per token through x402. `GET /v1/models` lists each model with its prices.
 */
export function createGatewayApp({
  billing,
  logger = silentLogger,
  maxBodyBytes = 4 * 1024 * 1024,
}: CreateGatewayAppParameters) {
  const app = new Hono<{ Variables: { tollgate: TollgateContext } }>();

  app.use("*", async (c, next) => {
    await next();
    c.res.headers.set("access-control-expose-headers", EXPOSED_PAYMENT_HEADERS.join(", "));
  });

  app.get("/health", (c) =>
    c.json({ ok: true, network: billing.terms.network, models: billing.models.size }),
  );

  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [...billing.models.values()].map((model) => ({
        id: model.id,
        object: "model",
        created: 0,
        owned_by: "tollgate",
        kind: model.kind,
        description: model.description,
        pricing: {
          network: billing.terms.network,
          asset: billing.terms.asset,
          payTo: billing.terms.payTo,
          schemes: [
            ...(model.inputPrice !== undefined ? ["upto"] : []),
            ...(model.exactPrice !== undefined ? ["exact"] : []),
          ],
          inputPerMTokAtomic: model.inputPrice?.toString(),
          outputPerMTokAtomic: model.outputPrice?.toString(),
          fixedFeeAtomic: model.fixedFee.toString(),
          exactPriceAtomic: model.exactPrice?.toString(),
          maxOutputTokens: model.maxOutputTokens,
          facilitatorAddress: billing.terms.facilitatorAddress,
        },
      })),
    }),
  );

  const limitBody = bodyLimit({
    maxSize: maxBodyBytes,
    onError: (c) =>
      c.json(
        {
          error: {
            message: `the request body exceeds ${maxBodyBytes} bytes`,
            type: "invalid_request_error",
            code: "TOLLGATE_REQUEST_TOO_LARGE",
          },
        },
        413,
      ),
  });
  const forward = tollgateHono({ billing });
  const handler = async (c: Context<{ Variables: { tollgate: TollgateContext } }>) => {
    const { quote, backendBody } = c.get("tollgate");
    return proxyToBackend({ model: quote.model, body: backendBody, signal: c.req.raw.signal });
  };
  app.post("/v1/chat/completions", limitBody, forward, handler);
  app.post("/v1/completions", limitBody, forward, handler);
  app.post("/v1/embeddings", limitBody, forward, handler);

  app.notFound((c) =>
    c.json(
      {
        error: {
          message: `no route ${c.req.method} ${c.req.path}`,
          type: "invalid_request_error",
          code: "not_found",
        },
      },
      404,
    ),
  );
  app.onError((error, c) => {
    if (isTollgateError(error, "TOLLGATE_BACKEND_TIMEOUT")) {
      return c.json({ error: { message: error.shortMessage, type: "backend_error", code: error.code } }, 504);
    }
    if (isTollgateError(error, "TOLLGATE_BACKEND_FAILED")) {
      return c.json({ error: { message: error.shortMessage, type: "backend_error", code: error.code } }, 502);
    }
    if (isTollgateError(error, "TOLLGATE_LEDGER_FAILED") && error.name !== "PaymentTransitionError") {
      // The database is unreachable: like an unreachable facilitator, a reason to come back, not a bug.
      logger.warn({ error: String(error) }, "ledger unavailable");
      c.header("Retry-After", "2");
      return c.json(
        { error: { message: "the payment ledger is unavailable", type: "server_error", code: error.code } },
        503,
      );
    }
    logger.error({ error: String(error), stack: (error as Error).stack }, "gateway internal error");
    return c.json(
      { error: { message: "internal error", type: "server_error", code: "TOLLGATE_INTERNAL" } },
      500,
    );
  });
  return app;
}
