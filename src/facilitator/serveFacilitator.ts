import { serve } from "@hono/node-server";
import type { Registry } from "prom-client";
import type { Logger } from "../errors/index.js";
import type { TollgateFacilitator } from "./createFacilitator.js";
import { createFacilitatorApp } from "./createFacilitatorApp.js";

export type ServeFacilitatorParameters = {
  facilitator: TollgateFacilitator;
  /** The bearer token all routes but `/supported` and `/health` want (see `createFacilitatorApp`). */
  token: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  logger?: Logger;
  /** Served at `GET /metrics` when given. */
  metrics?: Registry;
};

/** Serves the facilitator over HTTP; resolves once listening. */
export async function serveFacilitator({
  facilitator,
  token,
  host = "127.0.0.1",
  port = 4022,
  logger,
  metrics,
}: ServeFacilitatorParameters) {
  const app = createFacilitatorApp({ facilitator, token, logger, metrics });
  return new Promise<{ url: string; port: number; close(): Promise<void> }>((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: host, port }, (info) => {
      resolve({
        url: `http://${host}:${info.port}`,
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
    // A client that sends its request slowly holds a socket: bounded, so slow senders cannot pile up.
    const http = server as unknown as { headersTimeout: number; requestTimeout: number };
    http.headersTimeout = 10_000;
    http.requestTimeout = 30_000;
    server.once("error", reject);
  });
}
