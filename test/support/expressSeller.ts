// A seller's own Express server billed by Tollgate's middleware: the handler proxies to the backend as a
// README example does, writing the backend's answer as it comes, in its content type.
import type { AddressInfo } from "node:net";
import express from "express";
import {
  type Billing,
  proxyToBackend,
  type TollgateExpressContext,
  tollgateExpress,
} from "../../src/gateway/index.js";

/**
 * Serves `path` through `tollgateExpress({ billing })` on 127.0.0.1 (port 0), answering with the backend's
 * body in its content type (`fallbackType` when it names none). Returns the route's URL and a closer.
 */
export async function startExpressSeller(
  billing: Billing,
  path: string,
  fallbackType: string,
): Promise<{ url: string; close: () => Promise<void> }> {
  const app = express();
  // express.json() leaves a form be: the middleware reads it.
  app.post(path, express.json(), tollgateExpress({ billing }), async (_req, res) => {
    const { quote, backendBody, signal, promptSent } = res.locals.tollgate as TollgateExpressContext;
    const upstream = await proxyToBackend({
      model: quote.model,
      body: backendBody,
      route: quote.route,
      signal,
      onPromptSent: promptSent,
    });
    res.status(upstream.status).type(upstream.headers.get("content-type") ?? fallbackType);
    for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
    res.end();
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
