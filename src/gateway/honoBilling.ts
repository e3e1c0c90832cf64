import type { Context, MiddlewareHandler } from "hono";
import { REQUEST_ID_HEADER } from "../errors/index.js";
import { backendStopSignal } from "./backendStopSignal.js";
import { billHandlerFailure, billHandlerResponse } from "./billHandlerResponse.js";
import type { Billing } from "./createBilling.js";
import type { BillingSession } from "./createBillingSession.js";
import { nextTurn } from "./nextTurn.js";
import type { RequestQuote, RouteKind } from "./quoteRequest.js";
import { readRequestBody, requestInvalidAnswer } from "./readRequestBody.js";
import { routeOfPath, routes } from "./routes/index.js";

/** What the billing middleware leaves for the route handler in `c.get("tollgate")`. */
export type TollgateContext = {
  quote: RequestQuote;
  session: BillingSession;
  /** The body to send upstream: output limit set to what was authorized, usage asked for in streams. */
  backendBody: Record<string, unknown>;
  /**
   * Give it to the backend call. Aborted when the buyer leaves before the answer began, or when the
   * payment fails a check made while the handler runs (`overlapVoucherCheck`). Once the handler answered
   * with a stream, the billing session stops its backend when the buyer leaves, or reads it on for the
   * usage report of reasoning already spent (`hiddenReasoning`): the buyer's own signal
   * (`c.req.raw.signal`) would stop the backend before that report, and leave the reasoning unpaid.
   */
  signal: AbortSignal;
};

export type TollgateHonoParameters = {
  billing: Billing;
  /** Which endpoint this route is; defaults from the path (`/chat/completions`, `/completions`, `/embeddings`). */
  routeKind?: RouteKind;
  /**
   * Start the handler before a voucher's signature is checked, so the check (~0.5 ms) overlaps the
   * backend's first bytes; a bad signature aborts `c.get("tollgate").signal` and the buyer gets the 402.
   * Only for a handler whose one effect is a backend request it aborts on that signal: nothing it
   * returns is forwarded or charged before the check passed. Default false.
   */
  overlapVoucherCheck?: boolean;
};

/** Headers the gateway passes on from a backend answer (`proxyToBackend`), dropped from a refusal that replaces one. */
const BACKEND_HEADERS = ["cache-control", "retry-after", "content-length"];

/** Route kind from an OpenAI-style path. */
export function routeKindOfPath(path: string): RouteKind {
  return routeOfPath(path)?.kind ?? "completion";
}

/**
 * Hono middleware that bills an OpenAI-compatible route per token with x402 `upto` (and
 * `exact`): answers 402 with the request's maximum, verifies and claims the payment, lets the
 * handler run with the output limit enforced, meters the response and settles what was used.
 * The handler reads the metered body from `c.get("tollgate").backendBody` (or `c.req.json()`,
 * which returns the same, limited body).
 *
 * @example
 * app.post("/v1/chat/completions", tollgateHono({ billing }), async (c) => {
 *   const { backendBody, signal } = c.get("tollgate");
 *   return fetch(`${upstream}/chat/completions`, { method: "POST", body: JSON.stringify(backendBody), signal });
 * });
 */
export function tollgateHono({
  billing,
  routeKind,
  overlapVoucherCheck = false,
}: TollgateHonoParameters): MiddlewareHandler<{
  Variables: { tollgate: TollgateContext };
}> {
  return async function tollgateBilling(c, next) {
    const kind = routeKind ?? routeKindOfPath(c.req.path);
    let body: unknown;
    try {
      // A form route (a transcription's audio file) reads the form itself; any other, JSON.
      body = routes[kind].readForm ? await readRequestBody(c.req.raw, routes[kind]) : await c.req.json();
    } catch (error) {
      // A form cut at the body limit is the limit's 413 (hono's bodyLimit answers it), not a malformed form.
      if (routes[kind].readForm && (error as Error | undefined)?.name === "BodyLimitError") throw error;
      const answer = requestInvalidAnswer(error, "the request body must be JSON");
      return c.json(answer.body, answer.status as 400, answer.headers);
    }
    const decision = await billing.begin({
      url: c.req.url,
      headers: c.req.raw.headers,
      body,
      routeKind: kind,
      deferVoucherSignature: overlapVoucherCheck,
    });
    if (decision.action === "respond") {
      return c.json(decision.body, decision.status as 400, decision.headers);
    }
    const { quote, session, requestId, confirm } = decision;
    // The handler's c.req.json() (and text(), arrayBuffer()) read Hono's body cache, which keeps the text
    // read above and parses it again on each call: the cache becomes the limited body's text, so a
    // handler that forwards c.req.json() sends the output limit and none of the fields not forwarded.
    // It is written out only if a handler asks: one that sends `backendBody` (as the proxy does) never
    // pays for a second serialization of a prompt that may be megabytes.
    let limitedText: Promise<string> | undefined;
    c.req.bodyCache = Object.defineProperty({}, "text", {
      enumerable: true,
      get: () => {
        limitedText ??= Promise.resolve(JSON.stringify(quote.backendBody));
        return limitedText;
      },
    }) as typeof c.req.bodyCache;
    const backend = backendStopSignal(c.req.raw.signal);
    c.set("tollgate", { quote, session, backendBody: quote.backendBody, signal: backend.signal });

    if (confirm) {
      const handled = next();
      // Awaited below; a rejection while the check runs must not count as unhandled.
      handled.catch(() => undefined);
      // The handler's backend request goes out first; the check runs while the backend works.
      await nextTurn();
      const stopBackend = () => backend.stop(new Error("the payment was refused"));
      const refusal = await confirm(stopBackend).catch(async (error: unknown) => {
        backend.stop(error);
        await handled;
        throw error;
      });
      if (refusal) {
        stopBackend();
        await handled;
        await c.res.body?.cancel().catch(() => undefined);
        c.error = undefined;
        // Hono carries the aborted answer's headers over to the new one: not the backend's own.
        c.res = c.json(refusal.body, refusal.status as 400, refusal.headers);
        for (const name of BACKEND_HEADERS) if (!(name in refusal.headers)) c.res.headers.delete(name);
        return;
      }
      await handled;
    } else await next();
    backend.answered(c.error ? undefined : c.res);
    await meterAnswer(c, quote, session);
    // The answer the handler built may have immutable headers (a fetch Response): copy it to name the request.
    try {
      c.res.headers.set(REQUEST_ID_HEADER, requestId);
    } catch {
      const named = new Response(c.res.body, c.res);
      named.headers.set(REQUEST_ID_HEADER, requestId);
      c.res = named;
    }
  };
}

/** Meters the handler's answer: a stream is forwarded as it comes, JSON is cut to what was authorized; both settle. */
async function meterAnswer(
  c: Context<{ Variables: { tollgate: TollgateContext } }>,
  quote: RequestQuote,
  session: BillingSession,
): Promise<void> {
  if (c.error) await billHandlerFailure(session, c.error, c.req.raw.signal);
  else c.res = await billHandlerResponse(session, quote, c.res, c.req.raw.signal);
}
