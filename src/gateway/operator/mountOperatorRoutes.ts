import { randomBytes } from "node:crypto";
import type { Hono } from "hono";
import type { Registry } from "prom-client";
import { dashboardContentSecurityPolicy, renderDashboardPage } from "../../dashboard/index.js";
import { presentsToken } from "../../errors/index.js";
import { errorAnswer } from "../errorAnswer.js";
import { type GatewayDashboardParameters, readGatewayDashboard } from "./gatewayDashboard.js";

export type MountOperatorRoutesParameters = {
  /** `GET /metrics` from this registry, when given. */
  metrics?: { registry: Registry; token?: string | undefined } | undefined;
  /** `GET /dashboard` and `GET /dashboard/data.json`, when given: only for this token. */
  dashboard?:
    | (Omit<GatewayDashboardParameters, "ledger"> & { token: string; refreshMs?: number })
    | undefined;
  ledger: GatewayDashboardParameters["ledger"];
};

/**
 * The operator's endpoints on the gateway's app: Prometheus metrics (optionally behind a bearer token)
 * and the live dashboard (always behind its token). Neither exists unless configured.
 */
export function mountOperatorRoutes(
  app: Hono<never>,
  { metrics, dashboard, ledger }: MountOperatorRoutesParameters,
): void {
  const unauthorized = (what: string) => {
    const answer = errorAnswer("TOLLGATE_OPERATOR_UNAUTHORIZED", `${what} needs the operator token`);
    return new Response(JSON.stringify(answer.body), {
      status: answer.status,
      headers: {
        "content-type": "application/json",
        "www-authenticate": 'Bearer realm="tollgate"',
        ...answer.headers,
      },
    });
  };

  if (metrics) {
    const { registry, token } = metrics;
    app.get("/metrics", async function serveMetrics(c) {
      if (token !== undefined && !presentsToken(c.req.raw, token)) return unauthorized("/metrics");
      return c.body(await registry.metrics(), 200, { "content-type": registry.contentType });
    });
  }

  if (dashboard) {
    const { token, refreshMs = 2_000, ...options } = dashboard;
    const read = () => readGatewayDashboard({ ...options, ledger });
    app.get("/dashboard", async function serveDashboard(c) {
      if (!presentsToken(c.req.raw, token)) return unauthorized("/dashboard");
      const nonce = randomBytes(16).toString("base64");
      const { sections } = await read();
      const page = renderDashboardPage({
        title: "Tollgate — gateway",
        sections,
        dataUrl: "/dashboard/data.json",
        refreshMs,
        nonce,
      });
      return c.html(page, 200, {
        "content-security-policy": dashboardContentSecurityPolicy(nonce),
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",
      });
    });
    app.get("/dashboard/data.json", async function serveDashboardData(c) {
      if (!presentsToken(c.req.raw, token)) return unauthorized("/dashboard/data.json");
      const data = await read();
      return c.json(
        {
          updatedAt: data.updatedAt,
          figures: data.figures,
          sections: Object.fromEntries(data.sections.map((section) => [section.id, section.html])),
        },
        200,
        { "cache-control": "no-store" },
      );
    });
  }
}
