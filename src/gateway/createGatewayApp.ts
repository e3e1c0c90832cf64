import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { isTollgateError, type Logger, silentLogger } from "../errors/index.js";
import { unitPricesToStrings } from "../pricing/index.js";
import { EXPOSED_PAYMENT_HEADERS } from "../protocol/index.js";
import { CHANNEL_REFUND_PATH, type createChannelRefund } from "./channels/index.js";
import type { Billing } from "./createBilling.js";
import { errorAnswer } from "./errorAnswer.js";
import { type TollgateContext, tollgateHono } from "./honoBilling.js";
import { modelUnitPrices } from "./modelUnitPrices.js";
import { proxyToBackend } from "./proxyToBackend.js";
import { type RouteAdapter, routes } from "./routes/index.js";
import { schemesSelling } from "./unofferedModels.js";

export type CreateGatewayAppParameters = {
  billing: Billing;
  logger?: Logger;
  /** Largest request body on the inference routes, in bytes; larger gets 413. Default 4 MiB. */
  maxBodyBytes?: number;
  /** Cooperative refunds of payment channels at `GET /v1/channels/refund`, when channels are offered. */
  refundChannel?: ReturnType<typeof createChannelRefund>;
  /** Adds routes of your own (e.g. a paid MCP endpoint) before the 404 handler. */
  extraRoutes?: ((app: Hono) => void) | undefined;
};

/**
 * The gateway: an OpenAI-compatible API in front of the configured backends, every inference
 * route billed per token through x402. `GET /v1/models` lists each model with its prices.
 */
export function createGatewayApp({
  billing,
  logger = silentLogger,
  maxBodyBytes = 4 * 1024 * 1024,
  refundChannel,
  extraRoutes,
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
        apis: model.backend.apis ?? [model.kind],
        description: model.description,
        pricing: {
          network: billing.terms.network,
          asset: billing.terms.asset,
          payTo: billing.terms.payTo,
          // The schemes a 402 for this model offers, in its order: upto needs a facilitator that settles it.
          schemes: billing.schemes.filter(
            (scheme) =>
              schemesSelling(model, billing.channels !== undefined).some((selling) => selling === scheme) &&
              (scheme !== "upto" || billing.terms.facilitatorAddress !== undefined),
          ),
          inputPerMTokAtomic: modelUnitPrices(model)?.input_tokens?.toString(),
          outputPerMTokAtomic: modelUnitPrices(model)?.output_tokens?.toString(),
          fixedFeeAtomic: (modelUnitPrices(model)?.requests ?? 0n).toString(),
          units: unitPricesToStrings(modelUnitPrices(model) ?? {}),
          exactPriceAtomic: model.exactPrice?.toString(),
          maxOutputTokens: model.maxOutputTokens,
          // The longest a request may run: what a per-second price is multiplied by at most.
          maxDurationSeconds: model.backend.maxDurationSeconds,
          ...(model.imagePrices !== undefined
            ? {
                imagePrices: Object.fromEntries(
                  Object.entries(model.imagePrices).map(([size, price]) => [size, price.toString()]),
                ),
              }
            : {}),
          ...(model.exactPrice !== undefined
            ? { exactMaxPromptTokens: model.exactMaxPromptTokens, exactMaxChoices: model.exactMaxChoices }
            : {}),
          facilitatorAddress: billing.terms.facilitatorAddress,
          // How long a buyer's authorization is asked to live: a buyer that pays at once signs it so.
          maxTimeoutSeconds: billing.terms.maxTimeoutSeconds,
          receiptSigner: billing.receiptSigner,
        },
      })),
    }),
  );

  const tooLarge = (c: Context) => {
    const answer = errorAnswer(
      "TOLLGATE_REQUEST_TOO_LARGE",
      `the request body exceeds ${maxBodyBytes} bytes`,
    );
    return c.json(answer.body, answer.status as 413, answer.headers);
  };
  const countBody = bodyLimit({ maxSize: maxBodyBytes, onError: tooLarge });
  // A body of declared length is judged by its header (Node's HTTP parser reads exactly that many
  // bytes), so the route reads it once, straight from the socket; a chunked body is counted as it comes.
  const limitBody: MiddlewareHandler = (c, next) => {
    const length = c.req.header("content-length");
    if (length === undefined || !/^\d+$/.test(length) || c.req.header("transfer-encoding") !== undefined)
      return countBody(c, next);
    return Number(length) > maxBodyBytes ? Promise.resolve(tooLarge(c)) : next();
  };
  // The handler's one effect is the backend request, which it aborts when the payment is refused: a
  // voucher's signature is checked while the backend starts (see tollgateHono's overlapVoucherCheck).
  const forward = tollgateHono({ billing, overlapVoucherCheck: true });
  const handler = async (c: Context<{ Variables: { tollgate: TollgateContext } }>) => {
    const { quote, backendBody, signal } = c.get("tollgate");
    return proxyToBackend({ model: quote.model, body: backendBody, route: quote.route, signal });
  };
  for (const route of Object.values(routes)) {
    if (route.errorBody) app.post(`/v1${route.path}`, inErrorShapeOf(route), limitBody, forward, handler);
    else app.post(`/v1${route.path}`, limitBody, forward, handler);
  }
  extraRoutes?.(app as unknown as Hono);

  if (refundChannel) {
    app.get(CHANNEL_REFUND_PATH, async (c) => {
      const answer = await refundChannel({ url: c.req.url, headers: c.req.raw.headers });
      return c.json(answer.body, answer.status as 200, answer.headers);
    });
  }

  app.notFound((c) => {
    const answer = errorAnswer("TOLLGATE_ROUTE_UNKNOWN", `no route ${c.req.method} ${c.req.path}`);
    return c.json(answer.body, answer.status as 404, answer.headers);
  });
  app.onError((error, c) => {
    let answer = errorAnswer("TOLLGATE_INTERNAL", "internal error");
    if (
      isTollgateError(error) &&
      !(error.code === "TOLLGATE_LEDGER_FAILED" && error.name === "PaymentTransitionError")
    ) {
      const ledgerDown = error.code === "TOLLGATE_LEDGER_FAILED";
      // The database is unreachable: like an unreachable facilitator, a reason to come back, not a bug.
      if (ledgerDown) logger.warn({ error: String(error) }, "ledger unavailable");
      answer = errorAnswer(error.code, ledgerDown ? "the payment ledger is unavailable" : error.shortMessage);
    }
    if (answer.status === 500)
      logger.error({ error: String(error), stack: (error as Error).stack }, "gateway internal error");
    return c.json(answer.body, answer.status as 500, answer.headers);
  });
  return app;
}

/** Middleware that rewrites the gateway's OpenAI-shaped errors (not 402s) into the route's own error shape. */
function inErrorShapeOf(route: RouteAdapter): MiddlewareHandler {
  return async function routeErrorShape(c, next) {
    await next();
    const response = c.res;
    if (response.status < 400 || response.status === 402 || !route.errorBody) return;
    if (!response.headers.get("content-type")?.includes("application/json")) return;
    const body = (await response
      .clone()
      .json()
      .catch(() => undefined)) as
      | { type?: unknown; error?: { message?: unknown; code?: unknown } }
      | undefined;
    if (!body || body.type === "error" || typeof body.error?.message !== "string") return;
    const headers = new Headers(response.headers);
    headers.delete("content-length");
    c.res = new Response(
      JSON.stringify(route.errorBody(response.status, body.error.message, String(body.error.code ?? ""))),
      { status: response.status, headers },
    );
  };
}
