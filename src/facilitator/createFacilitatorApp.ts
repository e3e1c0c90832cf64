import { PaymentPayloadV2Schema, PaymentRequirementsV2Schema } from "@x402/core/schemas";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Registry } from "prom-client";
import {
  httpStatusOf,
  type Logger,
  presentsToken,
  REQUEST_ID_HEADER,
  RETRY_AFTER_SECONDS_OF,
  requestIdOf,
  runWithRequestId,
  silentLogger,
  TollgateError,
} from "../errors/index.js";
import { ReasonCode } from "../protocol/index.js";
import { channelPayloadProblem, isBatchSettlementPayment } from "./batchSettlementPayload.js";
import type { TollgateFacilitator } from "./createFacilitator.js";

export type CreateFacilitatorAppParameters = {
  facilitator: TollgateFacilitator;
  /**
   * The bearer token all routes but `GET /supported` and `GET /health` want. Whoever can settle chooses
   * the amount of an `upto` authorization and makes this facilitator pay gas: without it, a buyer could
   * settle its own authorization for 1 unit before the seller does.
   */
  token: string;
  logger?: Logger;
  /** Largest accepted request body, in bytes. */
  maxBodyBytes?: number;
  /** Served at `GET /metrics` in the Prometheus text format when given. */
  metrics?: Registry;
};

type ParsedRequest = { payload: PaymentPayload; requirements: PaymentRequirements };

/**
 * The facilitator's HTTP face in the x402 v2 wire format: `GET /supported`,
 * `POST /verify`, `POST /settle`, plus `GET /health`, `GET /metrics` and Tollgate's `POST /relay-approval`
 * and `POST /release`.
 * Malformed bodies answer 400 with a reason; an unreachable chain, or a wallet without gas, answers 503.
 */
export function createFacilitatorApp({
  facilitator,
  token,
  logger = silentLogger,
  maxBodyBytes = 64 * 1024,
  metrics,
}: CreateFacilitatorAppParameters): Hono {
  if (typeof token !== "string" || token.length < 16)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage:
        "the facilitator's token must be at least 16 characters (e.g. openssl rand -hex 32): whoever holds it can settle payments for any amount up to their maximum",
    });
  const app = new Hono();
  // The gateway's request id, when it sent one, names this call in the facilitator's log lines too.
  app.use("*", async function carryRequestId(c, next) {
    const requestId = requestIdOf(c.req.header(REQUEST_ID_HEADER));
    await runWithRequestId(requestId, next);
    c.res.headers.set(REQUEST_ID_HEADER, requestId);
  });
  const limit = bodyLimit({
    maxSize: maxBodyBytes,
    onError: (c) =>
      c.json({ error: "request_too_large", message: `body exceeds ${maxBodyBytes} bytes` }, 413),
  });

  /** The schemes it settles on its network, read from `/supported` once. */
  let schemes: Promise<string[]> | undefined;
  const parseRequest = async (
    request: Request,
  ): Promise<ParsedRequest | { error: string; field?: string }> => {
    let body: unknown;
    try {
      body = await request.json();
    } catch {
      return { error: "body is not valid JSON" };
    }
    if (typeof body !== "object" || body === null || Array.isArray(body))
      return { error: "body must be a JSON object" };
    const { paymentPayload, paymentRequirements } = body as Record<string, unknown>;
    const payload = PaymentPayloadV2Schema.safeParse(paymentPayload);
    if (!payload.success) return describeZodError("paymentPayload", payload.error);
    const requirements = PaymentRequirementsV2Schema.safeParse(paymentRequirements);
    if (!requirements.success) return describeZodError("paymentRequirements", requirements.error);
    // Refused here, in words, rather than failing deep inside a scheme.
    if (!/^[0-9]{1,78}$/.test(requirements.data.amount))
      return {
        error: `an amount is a whole number of atomic units in decimal digits, not ${JSON.stringify(requirements.data.amount)}`,
        field: "paymentRequirements.amount",
      };
    if (requirements.data.network !== facilitator.network)
      return {
        error: `this facilitator settles on ${facilitator.network}, not ${requirements.data.network}`,
        field: "paymentRequirements.network",
      };
    schemes ??= facilitator
      .getSupported()
      .then(({ kinds }) =>
        kinds.filter((kind) => kind.network === facilitator.network).map((kind) => kind.scheme),
      );
    const settled = await schemes;
    if (!settled.includes(requirements.data.scheme))
      return {
        error: `this facilitator settles ${settled.join(", ")} on ${facilitator.network}, not ${JSON.stringify(requirements.data.scheme)}`,
        field: "paymentRequirements.scheme",
      };
    for (const key of ["asset", "payTo"] as const)
      if (!/^0x[0-9a-fA-F]{40}$/.test(requirements.data[key]))
        return {
          error: `an address is 0x and 40 hex digits, not ${JSON.stringify(requirements.data[key])}`,
          field: `paymentRequirements.${key}`,
        };
    if (isBatchSettlementPayment(requirements.data as PaymentRequirements)) {
      const problem = channelPayloadProblem(payload.data.payload);
      if (problem) return problem;
    }
    return {
      payload: payload.data as PaymentPayload,
      requirements: requirements.data as PaymentRequirements,
    };
  };

  const failure = (error: unknown) => {
    if (
      error instanceof TollgateError &&
      (error.code === "TOLLGATE_CHAIN_UNAVAILABLE" || error.code === "TOLLGATE_FACILITATOR_UNAVAILABLE")
    ) {
      return {
        status: httpStatusOf(error.code) as 503,
        body: {
          error:
            error.code === "TOLLGATE_CHAIN_UNAVAILABLE" ? "chain_unavailable" : "facilitator_unavailable",
          message: error.shortMessage,
        },
        retryAfter: String(RETRY_AFTER_SECONDS_OF[error.code]),
      };
    }
    logger.error({ error: String(error) }, "facilitator internal error");
    return {
      status: httpStatusOf("TOLLGATE_INTERNAL") as 500,
      body: { error: "internal_error", message: "unexpected facilitator error" },
    };
  };

  // Only the seller's gateways verify and settle: an x402 facilitator is not for buyers to call.
  app.use("*", async function requireToken(c, next) {
    const open = c.req.method === "GET" && (c.req.path === "/health" || c.req.path === "/supported");
    // In the Authorization header only: a token in a URL ends up in proxies' logs.
    if (open || presentsToken(c.req.raw, token, { inQuery: false })) return next();
    c.header("www-authenticate", 'Bearer realm="tollgate-facilitator"');
    return c.json(
      {
        error: "unauthorized",
        code: "TOLLGATE_OPERATOR_UNAUTHORIZED",
        message:
          "this facilitator wants Authorization: Bearer <token>, the token tollgate facilitator printed at start (or TOLLGATE_FACILITATOR_TOKEN); give it to the gateway as facilitator.tokenEnv",
      },
      httpStatusOf("TOLLGATE_OPERATOR_UNAUTHORIZED") as 401,
    );
  });
  app.get("/health", (c) => c.json({ ok: true, network: facilitator.network, address: facilitator.address }));
  if (metrics)
    app.get("/metrics", async (c) =>
      c.text(await metrics.metrics(), 200, { "content-type": metrics.contentType }),
    );
  app.get("/supported", async (c) => c.json(await facilitator.getSupported()));

  app.post("/verify", limit, async (c) => {
    const parsed = await parseRequest(c.req.raw);
    if ("error" in parsed)
      return c.json({ error: "invalid_request", message: parsed.error, field: parsed.field }, 400);
    try {
      return c.json(await facilitator.verify(parsed.payload, parsed.requirements));
    } catch (error) {
      const { status, body, retryAfter } = failure(error);
      if (retryAfter) c.header("Retry-After", retryAfter);
      return c.json(body, status);
    }
  });

  app.post("/settle", limit, async (c) => {
    const parsed = await parseRequest(c.req.raw);
    if ("error" in parsed)
      return c.json({ error: "invalid_request", message: parsed.error, field: parsed.field }, 400);
    try {
      return c.json(await facilitator.settle(parsed.payload, parsed.requirements));
    } catch (error) {
      const { status, body, retryAfter } = failure(error);
      if (retryAfter) c.header("Retry-After", retryAfter);
      return c.json(body, status);
    }
  });

  // Tollgate's own route: a seller that verified a payment and drops it without settling (it refused the
  // request after verify, or could not serve it) gives back what the payment holds here: its EIP-2612
  // permit nonce, which would refuse the payer's next payments until the permit's deadline, and its
  // sponsored use. Behind the token, and for the payment itself (its signed authorization names the hold):
  // no buyer can free its own nonce to have a second permit on it served, and a settle already begun keeps it.
  app.post("/release", limit, async (c) => {
    const parsed = await parseRequest(c.req.raw);
    if ("error" in parsed)
      return c.json({ error: "invalid_request", message: parsed.error, field: parsed.field }, 400);
    try {
      return c.json(await facilitator.release(parsed.payload, parsed.requirements));
    } catch (error) {
      const { status, body, retryAfter } = failure(error);
      if (retryAfter) c.header("Retry-After", retryAfter);
      return c.json(body, status);
    }
  });

  // Tollgate's own route: a gateway on this facilitator has a payment's signed approve relayed (or its
  // permit's sponsored use taken) before it serves the request (see `relaySponsoredApproval`), so a payer
  // that spends the gas funded for it, or is past its limit, is refused rather than served. `GET` answers 405, which tells a gateway at start that the route exists.
  app.get("/relay-approval", (c) => {
    c.header("allow", "POST");
    return c.json(
      {
        error: "method_not_allowed",
        message:
          "POST a verified payment (as to /verify) to have its signed approve relayed before it is served",
      },
      405,
    );
  });
  app.post("/relay-approval", limit, async (c) => {
    const parsed = await parseRequest(c.req.raw);
    if ("error" in parsed)
      return c.json({ error: "invalid_request", message: parsed.error, field: parsed.field }, 400);
    try {
      // Verified here, whatever the caller says: otherwise any signed approve (of any token, with no
      // payment behind it) would have this facilitator fund its gas.
      // Its request was verified at /verify already: it holds a permit once, for one release.
      const verified = await facilitator.verify(parsed.payload, parsed.requirements, { again: true });
      if (!verified.isValid)
        return c.json({
          isValid: false,
          invalidReason: ReasonCode.gasSponsoringRefused,
          invalidMessage: `the payment is not verified (${verified.invalidReason ?? "invalid_payment"}${verified.invalidMessage ? `: ${verified.invalidMessage}` : ""}), so its approve is not relayed`,
        });
      // A gateway that gave up (its bound passed) closes the request: nothing is funded after that.
      const refused = await facilitator.relaySponsoredApproval(parsed.payload, parsed.requirements, {
        signal: c.req.raw.signal,
      });
      return c.json(
        refused === undefined
          ? { isValid: true }
          : { isValid: false, invalidReason: ReasonCode.gasSponsoringRefused, invalidMessage: refused },
      );
    } catch (error) {
      const { status, body, retryAfter } = failure(error);
      if (retryAfter) c.header("Retry-After", retryAfter);
      return c.json(body, status);
    }
  });

  app.notFound((c) => c.json({ error: "not_found", message: `no route ${c.req.method} ${c.req.path}` }, 404));
  app.onError((error, c) => {
    const { status, body } = failure(error);
    return c.json(body, status);
  });
  return app;
}

function describeZodError(
  root: string,
  error: { issues: Array<{ path: Array<string | number>; message: string }> },
): { error: string; field: string } {
  const issue = error.issues[0];
  const field = [root, ...(issue?.path ?? [])].join(".");
  return { error: `${field}: ${issue?.message ?? "invalid"}`, field };
}
