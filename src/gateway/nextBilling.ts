import { backendStopSignal } from "./backendStopSignal.js";
import { billHandlerFailure, billHandlerResponse } from "./billHandlerResponse.js";
import type { Billing } from "./createBilling.js";
import { routeKindOfPath, type TollgateContext } from "./honoBilling.js";
import type { RouteKind } from "./quoteRequest.js";
import { readRequestBody, requestInvalidAnswer } from "./readRequestBody.js";
import { routes } from "./routes/index.js";

export type WithTollgateParameters = {
  /**
   * The billing, a promise of it, or a function that makes it, called once at the first request: nothing
   * opens a ledger or reads the environment while `next build` loads the route module.
   */
  billing: Billing | Promise<Billing> | (() => Billing | Promise<Billing>);
  /** Which endpoint this route is; defaults from the path (`/chat/completions`, `/completions`, `/embeddings`). */
  routeKind?: RouteKind;
};

/**
 * A paid route handler: the request carries the limited body; `tollgate` holds the quote, the session
 * and the `signal` to give the backend call (see `TollgateContext`).
 */
export type TollgateRouteHandler<Context> = (
  request: Request,
  context: Context,
  tollgate: TollgateContext,
) => Response | Promise<Response>;

/**
 * Bills a Next.js App Router route handler (or any `(Request) => Response` handler) per token with x402
 * `upto` (and `exact`), as `tollgateHono` does: answers 402 with the request's maximum, verifies and claims
 * the payment, runs the handler on the body limited to what was authorized, meters its answer — JSON or a
 * server-sent event stream, forwarded as it comes — and settles what was used. The receipt is the
 * `PAYMENT-RESPONSE` header of a JSON answer, or the stream's last event before `[DONE]`.
 *
 * @example
 * // app/v1/chat/completions/route.ts
 * export const POST = withTollgate(
 *   (_request, _context, { quote, backendBody, signal }) =>
 *     proxyToBackend({ model: quote.model, body: backendBody, signal }),
 *   { billing },
 * );
 */
export function withTollgate<Context = unknown>(
  handler: TollgateRouteHandler<Context>,
  { billing, routeKind }: WithTollgateParameters,
): (request: Request, context: Context) => Promise<Response> {
  let made: Promise<Billing> | undefined;
  const billingOnce = () => {
    made ??= Promise.resolve(typeof billing === "function" ? billing() : billing);
    // A failure to make it is not kept: the next request tries again.
    made.catch(() => {
      made = undefined;
    });
    return made;
  };
  return async function tollgateRoute(request, context) {
    const kind = routeKind ?? routeKindOfPath(new URL(request.url).pathname);
    let body: unknown;
    try {
      body = await readRequestBody(request, routes[kind]);
    } catch (error) {
      const answer = requestInvalidAnswer(error, "the request body must be JSON");
      return Response.json(answer.body, { status: answer.status, headers: answer.headers });
    }
    const decision = await (await billingOnce()).begin({
      url: request.url,
      headers: request.headers,
      body,
      routeKind: kind,
    });
    if (decision.action === "respond") {
      return Response.json(decision.body, { status: decision.status, headers: decision.headers });
    }
    const { quote, session } = decision;
    const headers = new Headers(request.headers);
    headers.delete("content-length");
    // A form route's handler gets the form as the backend is sent it (`encodeBody`).
    const encoded = await quote.route.encodeBody?.(quote.backendBody);
    headers.set("content-type", encoded?.contentType ?? "application/json");
    const limited = new Request(request.url, {
      method: request.method,
      headers,
      body: encoded?.body ?? JSON.stringify(quote.backendBody),
      signal: request.signal,
    });
    const backend = backendStopSignal(request.signal);
    let response: Response;
    try {
      response = await handler(limited, context, {
        quote,
        session,
        backendBody: quote.backendBody,
        signal: backend.signal,
      });
      backend.answered(response);
    } catch (error) {
      await billHandlerFailure(session, error, request.signal);
      throw error;
    }
    return billHandlerResponse(session, quote, response, request.signal);
  };
}
