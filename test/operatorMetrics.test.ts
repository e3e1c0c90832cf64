import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Registry } from "prom-client";
import { startDevnet } from "../src/devnet/index.js";
import { createFacilitator, createFacilitatorMetrics, serveFacilitator } from "../src/facilitator/index.js";
import { tollgateHono } from "../src/gateway/index.js";
import { ROUTE_LABELS_KEPT } from "../src/gateway/operator/createGatewayMetrics.js";
import type { PaymentRecord } from "../src/ledger/index.js";
import { captureLogger } from "../src/ledger/testkit/captureLogger.js";
import { facilitatorAuth, TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";
import {
  type GatewayHarness,
  moveUsdcAway,
  officialPayingFetch,
  startGatewayHarness,
} from "./support/gatewayHarness.js";
import { holdStreams, mockModelId } from "./support/mockBackend.js";
import { parsePrometheusText, sumOf } from "./support/prometheusText.js";

const metricsToken = "metrics-token-0123456789";
const dashboardToken = "dashboard-token-0123456789";

const chatBody = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "count a few things" }],
    max_tokens: 48,
    ...extra,
  });

let h: GatewayHarness;
const { logger, records } = captureLogger();
before(async () => {
  h = await startGatewayHarness({
    logger,
    configure: (input) => ({
      ...input,
      metrics: { token: metricsToken },
      dashboard: { enabled: true, token: dashboardToken },
    }),
    // A billed route of the seller's own whose path takes a parameter the client chooses.
    routes: (app, billing) => {
      app.post("/t/:tenant/chat/completions", tollgateHono({ billing, routeKind: "chat" }), (c) =>
        c.json({}),
      );
    },
  });
});
after(async () => {
  await h?.close();
});

const post = (body: string, headers: Record<string, string> = {}) =>
  fetch(`${h.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });

async function scrape() {
  const response = await fetch(`${h.gateway.url}/metrics`, {
    headers: { authorization: `Bearer ${metricsToken}` },
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /text\/plain/);
  return parsePrometheusText(await response.text());
}

async function allRows(): Promise<PaymentRecord[]> {
  return h.ledger.payments.recent({ limit: 1000 });
}

/** Waits until no payment is pending any more (their money is final). */
async function settledLedger(): Promise<PaymentRecord[]> {
  for (let attempt = 0; attempt < 400; attempt++) {
    const rows = await allRows();
    if (rows.every((row) => ["settled", "zero", "debt", "failed"].includes(row.status))) return rows;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail("payments stayed pending");
}

describe("metrics and the ledger", () => {
  test("after a mixed run (paid, refused, backend failure, debt) the counters equal the ledger", async () => {
    const buyer = await h.devnet.createBuyer(50_000_000n);
    const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
    const url = `${h.gateway.url}/v1/chat/completions`;
    const json = { method: "POST", headers: { "content-type": "application/json" } };
    let quotes = 0;

    // Paid: two JSON answers and one stream (each pays after one 402).
    h.backend.set({ responseTokens: 12, tokensPerSecond: 0, failBeforeOutput: false });
    for (const body of [chatBody(), chatBody({ max_tokens: 20 }), chatBody({ stream: true })]) {
      const response = await pay(url, { ...json, body });
      assert.equal(response.status, 200, await response.clone().text());
      await response.text();
      quotes++;
    }
    // Refused before anything ran: an unpaid request, a malformed payment, an unknown model.
    assert.equal((await post(chatBody())).status, 402);
    quotes++;
    assert.equal((await post(chatBody(), { "payment-signature": "not base64 json" })).status, 400);
    assert.equal((await post(chatBody({ model: "no-such-model" }))).status, 404);
    // The backend fails before any output: nothing charged.
    h.backend.set({ failBeforeOutput: true, failStatus: 500 });
    const failed = await pay(url, { ...json, body: chatBody() });
    assert.equal(failed.status, 500);
    await failed.text();
    quotes++;
    h.backend.set({ failBeforeOutput: false });

    // Debt: a payer empties its wallet while its stream is served.
    const walker = await h.devnet.createBuyer(1_000_000n);
    h.backend.set({ responseTokens: 40, tokensPerSecond: 50 });
    const release = holdStreams(h.backend, 4);
    let walkAway: Response;
    try {
      walkAway = await officialPayingFetch(walker.privateKey, h.devnet.network)(url, {
        ...json,
        body: chatBody({ stream: true }),
      });
      quotes++;
      assert.equal(walkAway.status, 200);
      await moveUsdcAway(h.devnet, walker.privateKey, 1_000_000n);
    } finally {
      release();
    }
    await walkAway.text();
    h.backend.set({ tokensPerSecond: 0 });

    const rows = await settledLedger();
    const samples = await scrape();
    const count = (status: string) => rows.filter((row) => row.status === status).length;
    assert.ok(
      count("settled") >= 3 && count("debt") === 1 && count("failed") === 1,
      JSON.stringify(rows.map((r) => r.status)),
    );

    for (const outcome of ["settled", "zero", "debt", "failed"])
      assert.equal(
        sumOf(samples, "tollgate_payments_total", { outcome }),
        count(outcome),
        `payments ${outcome}`,
      );
    assert.equal(
      sumOf(samples, "tollgate_payments_total", { outcome: "refused" }),
      0,
      "no payment header was refused by the facilitator",
    );
    const total = (pick: (row: PaymentRecord) => bigint | number | null) =>
      rows.reduce((sum, row) => sum + Number(pick(row) ?? 0), 0);
    assert.equal(
      sumOf(samples, "tollgate_revenue_atomic_total", { model: mockModelId }),
      total((row) => (row.status === "settled" ? row.chargeAtomic : 0)),
      "revenue = the settled charges",
    );
    assert.equal(
      sumOf(samples, "tollgate_authorized_atomic_total", { model: mockModelId }),
      total((row) => row.maxAtomic),
      "authorized = the maxima of every row",
    );
    assert.equal(
      sumOf(samples, "tollgate_usage_total", { unit: "input_tokens" }),
      total((row) => row.promptTokens),
    );
    assert.equal(
      sumOf(samples, "tollgate_usage_total", { unit: "output_tokens" }),
      total((row) => row.completionTokens),
    );
    assert.equal(sumOf(samples, "tollgate_open_debts"), count("debt"));
    assert.equal(sumOf(samples, "tollgate_settlement_backlog"), count("metered") + count("settling"));
    assert.equal(sumOf(samples, "tollgate_requests_total", { status: "402" }), quotes);
    assert.equal(sumOf(samples, "tollgate_requests_total", { status: "400" }), 1);
    assert.equal(sumOf(samples, "tollgate_requests_total", { status: "404", model: "" }), 1);
    assert.equal(
      sumOf(samples, "tollgate_requests_total", { status: "500" }),
      1,
      "the failed backend's status",
    );
    assert.equal(
      sumOf(samples, "tollgate_requests_total", { status: "200", route: "/v1/chat/completions" }),
      count("settled") + count("zero") + count("debt"),
      "every delivered request once",
    );
    assert.equal(
      sumOf(samples, "tollgate_settle_duration_seconds_count"),
      count("settled") + count("zero") + count("debt"),
    );
    assert.equal(sumOf(samples, "tollgate_verify_duration_seconds_count"), rows.length);
    assert.equal(
      sumOf(samples, "tollgate_ttft_seconds_count"),
      count("settled") + count("zero") + count("debt"),
    );
    assert.ok(
      sumOf(samples, "tollgate_facilitator_settlements_total") >= count("settled"),
      "the in-process facilitator counts into the same registry",
    );
  });

  test("a crowd on many spellings of a route, or many values of a route's path parameter, adds a bounded number of series", async () => {
    const requestSeries = async () =>
      (await scrape()).filter((sample) => sample.name === "tollgate_requests_total").length;
    const before = await requestSeries();
    // Percent-escapes of the chat route's letters: routed to it, so counted as it.
    const letters = [..."chat/completions"];
    for (let spelling = 1; spelling <= 40; spelling++) {
      const path = letters
        .map((letter, at) =>
          letter !== "/" && (spelling >> at) & 1 ? `%${letter.charCodeAt(0).toString(16)}` : letter,
        )
        .join("");
      const response = await fetch(`${h.gateway.url}/v1/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody(),
      });
      assert.equal(response.status, 402, path);
    }
    const samples = await scrape();
    const routesSeen = new Set(
      samples
        .filter((sample) => sample.name === "tollgate_requests_total")
        .map((sample) => sample.labels.route),
    );
    assert.ok(routesSeen.has("/v1/chat/completions"));
    assert.deepEqual(
      [...routesSeen].filter((route) => route?.includes("%")),
      [],
      "no escaped spelling of a route is a label",
    );
    // A parameter the client chooses: past the routes kept, further paths are counted as other.
    for (let tenant = 0; tenant < ROUTE_LABELS_KEPT + 40; tenant++) {
      const response = await fetch(`${h.gateway.url}/t/tenant-${tenant}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [] }),
      });
      assert.equal(response.status, 400);
    }
    const after = await requestSeries();
    assert.ok(
      after - before <= ROUTE_LABELS_KEPT + 2,
      `${after - before} new series for ${ROUTE_LABELS_KEPT + 80} spellings and paths`,
    );
    assert.ok(
      sumOf(await scrape(), "tollgate_requests_total", { route: "other", status: "400" }) >= 40,
      "the paths past the bound are counted as other",
    );
  });

  test("/metrics needs the bearer token when one is configured", async () => {
    const bare = await fetch(`${h.gateway.url}/metrics`);
    assert.equal(bare.status, 401);
    assert.equal((await bare.json()).error.code, "TOLLGATE_OPERATOR_UNAUTHORIZED");
    const wrong = await fetch(`${h.gateway.url}/metrics`, {
      headers: { authorization: "Bearer wrong-token-wrong-token" },
    });
    assert.equal(wrong.status, 401);
  });
});

describe("request ids", () => {
  test("one request id goes back to the client, into the log lines and onto the ledger row", async () => {
    const buyer = await h.devnet.createBuyer(5_000_000n);
    h.backend.set({ responseTokens: 8, tokensPerSecond: 0, failBeforeOutput: false });
    const response = await officialPayingFetch(buyer.privateKey, h.devnet.network)(
      `${h.gateway.url}/v1/chat/completions`,
      { method: "POST", headers: { "content-type": "application/json" }, body: chatBody() },
    );
    assert.equal(response.status, 200);
    await response.text();
    const requestId = response.headers.get("x-request-id");
    assert.match(requestId ?? "", /^[0-9a-f-]{36}$/, "a new UUID when the client sent none");
    const rows = await settledLedger();
    const row = rows.find((candidate) => candidate.payer === buyer.address.toLowerCase());
    assert.equal(row?.requestId, requestId, "the ledger row names the request");
    const facilitatorLines = records.filter(
      (record) => record.requestId === requestId && record.msg === "facilitator settle",
    );
    assert.equal(facilitatorLines.length, 1, "the facilitator's settle line names the request");
  });

  test("a well-formed incoming id is kept; a malformed one is replaced", async () => {
    const kept = await post(chatBody(), { "x-request-id": "client-run-42.attempt-1" });
    assert.equal(kept.headers.get("x-request-id"), "client-run-42.attempt-1");
    const replaced = await post(chatBody(), { "x-request-id": "two words <script>" });
    assert.notEqual(replaced.headers.get("x-request-id"), "two words <script>");
    assert.match(replaced.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
  });
});

describe("dashboard", () => {
  test("is refused without the operator token, as the caller's error", async () => {
    for (const path of ["/dashboard", "/dashboard/data.json?token=wrong"]) {
      const response = await fetch(`${h.gateway.url}${path}`);
      assert.equal(response.status, 401);
      const { error } = (await response.json()) as { error: { type: string; code: string } };
      assert.equal(error.type, "invalid_request_error", path);
      assert.equal(error.code, "TOLLGATE_OPERATOR_UNAUTHORIZED", path);
    }
  });

  test("its data holds the ledger's figures", async () => {
    const rows = await settledLedger();
    const response = await fetch(`${h.gateway.url}/dashboard/data.json?token=${dashboardToken}`);
    assert.equal(response.status, 200);
    const data = (await response.json()) as {
      figures: { chargedAtomic: string; openDebts: number; payments: number };
      sections: Record<string, string>;
    };
    const charged = rows.reduce(
      (sum, row) => sum + (row.status === "settled" ? (row.chargeAtomic ?? 0n) : 0n),
      0n,
    );
    assert.equal(data.figures.chargedAtomic, charged.toString());
    assert.equal(data.figures.payments, rows.length);
    assert.equal(data.figures.openDebts, rows.filter((row) => row.status === "debt").length);
    assert.match(data.sections.recent ?? "", new RegExp(rows[0]!.requestId ?? "no id"));
  });
});

describe("a remote facilitator", () => {
  test("gets the request id in a header, logs it, and counts its settlements on its own /metrics", async () => {
    const devnet = await startDevnet({ buyers: 1 });
    const registry = new Registry();
    const facilitatorLog = captureLogger();
    const served = await serveFacilitator({
      facilitator: createFacilitator({
        rpcUrl: devnet.rpcUrl,
        privateKey: devnet.accounts.facilitator.privateKey,
        network: devnet.network,
        pollingIntervalMs: 20,
        logger: facilitatorLog.logger,
        onFacilitatorEvent: createFacilitatorMetrics({ registry }),
      }),
      token: TEST_FACILITATOR_TOKEN,
      port: 0,
      logger: facilitatorLog.logger,
      metrics: registry,
    });
    const remote = await startGatewayHarness({
      devnet,
      configure: (input) => ({ ...input, facilitator: { url: served.url, token: TEST_FACILITATOR_TOKEN } }),
    });
    try {
      const response = await officialPayingFetch(devnet.accounts.buyers[0]!.privateKey, devnet.network)(
        `${remote.gateway.url}/v1/chat/completions`,
        {
          method: "POST",
          headers: { "content-type": "application/json", "x-request-id": "remote-facilitator-check-1" },
          body: chatBody(),
        },
      );
      assert.equal(response.status, 200, await response.clone().text());
      await response.text();
      assert.equal(response.headers.get("x-request-id"), "remote-facilitator-check-1");
      const lines = facilitatorLog.records.filter(
        (record) => record.requestId === "remote-facilitator-check-1",
      );
      assert.deepEqual(
        lines.map((record) => record.msg),
        ["facilitator verify", "facilitator settle"],
        "the facilitator's verify and settle lines name the gateway's request",
      );
      const [row] = await remote.ledger.payments.recent({ limit: 1 });
      assert.equal(row?.requestId, "remote-facilitator-check-1");
      const scraped = parsePrometheusText(
        await (await fetch(`${served.url}/metrics`, { headers: facilitatorAuth })).text(),
      );
      assert.equal(sumOf(scraped, "tollgate_facilitator_settlements_total", { scheme: "upto" }), 1);
    } finally {
      await remote.close();
      await served.close();
      await devnet.stop();
    }
  });
});
