import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { type Logger, silentLogger } from "../errors/index.js";
import type { Billing } from "../gateway/index.js";
import { gasSponsoringExtensions } from "../gateway/index.js";
import type { PaymentRequired, PaymentRequirements } from "../protocol/index.js";
import { MCP_PAYMENT_RESPONSE_META_KEY, paymentRequiredResult, readPaymentMeta } from "./mcpPaymentMeta.js";

/** The request context the MCP SDK passes to a tool handler. */
export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** How a tool is paid: a fixed price (`exact`), or a maximum per call with the tool reporting its charge (`upto`). */
export type ToolPrice<Args> =
  | { scheme: "exact"; priceAtomic: bigint }
  | { scheme: "upto"; maxAtomic: bigint | ((args: Args) => bigint) };

/** What a paid tool's handler hands back: its result, and for `upto` what the call cost (≤ the maximum). */
export type PaidToolWork = {
  result: CallToolResult;
  /** The charge for this call; `upto` only (exact charges its price). Missing: the maximum is charged. */
  chargeAtomic?: bigint | undefined;
  /** Tokens used, for the ledger's record. */
  usage?: { promptTokens: number; completionTokens: number } | undefined;
};

export type PaidToolParameters<Args> = {
  billing: Billing;
  /** The tool's name: the ledger's `model` for its payments. */
  name: string;
  description?: string | undefined;
  price: ToolPrice<Args>;
  /** The 402's `resource.url`; default `mcp://tool/<name>`. */
  resourceUrl?: string | undefined;
  /**
   * The longest one call may run (ms): the authorization must outlive it. A call still running then
   * ends with a tool error, unpaid; the handler's signal (`extra.signal`) is aborted. Default 60 s.
   */
  timeBoundMs?: number | undefined;
  /** How often a running call refreshes its ledger row (ms); default 10 s. */
  heartbeatMs?: number | undefined;
  logger?: Logger | undefined;
  handler: (args: Args, extra: ToolExtra) => Promise<PaidToolWork>;
};

/**
 * Turns a tool handler of the MCP SDK's `McpServer` into a paid tool, per the x402 MCP transport:
 * a call without payment gets a tool error carrying the `PaymentRequired`; a call with
 * `_meta["x402/payment"]` is verified and claimed once in the ledger (a replay is refused, a payer
 * in debt too), runs the handler, settles its charge (exact: the price; upto: what the handler
 * reports, never above the maximum) and carries the settlement in `_meta["x402/payment-response"]`.
 * A handler that throws or returns `isError` is not charged, nor is a call its caller cancelled before the
 * handler returned (the SDK sends it no result), nor one still running at `timeBoundMs`; the handler
 * may watch `extra.signal` to stop early.
 * @example
 * server.registerTool("lookup", { inputSchema: { q: z.string() } }, paidTool({
 *   billing, name: "lookup", price: { scheme: "exact", priceAtomic: 1000n },
 *   handler: async ({ q }: { q: string }) => ({ result: { content: [{ type: "text", text: await find(q) }] } }),
 * }));
 */
export function paidTool<Args>(
  parameters: PaidToolParameters<Args>,
): (args: Args, extra: ToolExtra) => Promise<CallToolResult> {
  const { billing, name, price, logger = silentLogger } = parameters;
  const resourceUrl = parameters.resourceUrl ?? `mcp://tool/${name}`;
  const timeBoundMs = parameters.timeBoundMs ?? 60_000;
  const heartbeatMs = parameters.heartbeatMs ?? 10_000;

  return async function callPaidTool(args, extra) {
    const offers = toolOffers(billing, price, args);
    const paymentRequired = (error?: string): CallToolResult => {
      const required: PaymentRequired = {
        x402Version: 2,
        error: error ?? `payment required to call ${name}`,
        resource: {
          url: resourceUrl,
          description: parameters.description ?? `MCP tool ${name}`,
          mimeType: "application/json",
        },
        accepts: offers,
      };
      const extensions = gasSponsoringExtensions(offers, billing.terms);
      return paymentRequiredResult(extensions ? { ...required, extensions } : required);
    };
    if (offers.length === 0) return paymentRequired("no payment scheme is available right now");

    const maxAtomic = offers.find((offer) => offer.scheme === price.scheme)?.amount;
    const read = readPaymentMeta(extra._meta);
    // No payment, or one that cannot be read: answered with the requirements, and counted as that 402.
    if (read === undefined || !read.ok) {
      billing.paymentRequired({
        model: name,
        route: resourceUrl,
        maxAtomic: maxAtomic === undefined ? undefined : BigInt(maxAtomic),
      });
      return read === undefined ? paymentRequired() : paymentRequired(`${read.reason}: ${read.message}`);
    }
    const payment = read.payment;
    const admitted = await billing.admit({
      payment,
      offers,
      timeBoundMs,
      maxAtomic: maxAtomic === undefined ? undefined : BigInt(maxAtomic),
      model: name,
      route: resourceUrl,
    });
    if (!admitted.admitted) {
      const { refusal } = admitted;
      return paymentRequired(
        refusal.kind === "payment_required" ? refusal.error : `${refusal.code}: ${refusal.message}`,
      );
    }

    const { paymentId } = admitted;
    const heartbeat = setInterval(() => {
      billing.ledger
        .touch(paymentId)
        .catch((error: unknown) =>
          logger.warn({ paymentId, error: String(error) }, "ledger heartbeat failed"),
        );
    }, heartbeatMs);
    heartbeat.unref();
    // The authorization outlives the time bound, not more: a call still running then is ended unpaid,
    // and the handler is told through its signal. What it answers later is dropped.
    const bound = new AbortController();
    const timer = setTimeout(
      () => bound.abort(new Error(`${name} did not answer within ${timeBoundMs} ms`)),
      timeBoundMs,
    );
    timer.unref();
    const outOfTime = new Promise<"timeout">((resolve) =>
      bound.signal.addEventListener("abort", () => resolve("timeout"), { once: true }),
    );
    let work: PaidToolWork | "timeout";
    try {
      const running = parameters.handler(args, {
        ...extra,
        signal: AbortSignal.any([extra.signal, bound.signal]),
      });
      running.catch(() => undefined);
      work = await Promise.race([running, outOfTime]);
    } catch (error) {
      clearTimeout(timer);
      clearInterval(heartbeat);
      await billing.fail(paymentId, `tool ${name} failed: ${String(error)}`);
      return toolError(`${name} failed: ${(error as Error).message}; nothing was charged`);
    }
    clearTimeout(timer);
    clearInterval(heartbeat);
    if (work === "timeout") {
      await billing.fail(paymentId, `tool ${name} did not answer within its time bound (${timeBoundMs} ms)`);
      return toolError(`${name} did not answer within ${timeBoundMs} ms; nothing was charged`);
    }
    // The SDK sends nothing for a call its caller cancelled: it gets no result, and pays nothing.
    if (extra.signal.aborted) {
      await billing.fail(paymentId, `tool ${name} answered after its caller cancelled the call`);
      return toolError(`${name} was cancelled before its result; nothing was charged`);
    }
    if (work.result.isError) {
      await billing.fail(paymentId, `tool ${name} answered an error`);
      return work.result;
    }

    const chargeAtomic =
      admitted.requirements.scheme === "upto"
        ? minimum(work.chargeAtomic ?? admitted.maxAtomic, admitted.maxAtomic)
        : admitted.maxAtomic;
    const outcome = await billing.settle({
      paymentId,
      payload: payment,
      requirements: admitted.requirements,
      usage: {
        promptTokens: work.usage?.promptTokens ?? 0,
        completionTokens: work.usage?.completionTokens ?? 0,
        units: work.usage
          ? { input_tokens: work.usage.promptTokens, output_tokens: work.usage.completionTokens, requests: 1 }
          : { requests: 1 },
        source: "backend",
      },
      chargeAtomic: chargeAtomic < 0n ? 0n : chargeAtomic,
    });
    const settlement = { ...outcome.settlement, payer: admitted.payer };
    if (!settlement.success) {
      // The transport's rule: a failed settlement returns the payment error, not the tool's content.
      const failed = paymentRequired(
        `settlement failed (${settlement.errorReason ?? "unknown reason"}); the charge is recorded as owed`,
      );
      return { ...failed, _meta: { [MCP_PAYMENT_RESPONSE_META_KEY]: settlement } };
    }
    return {
      ...work.result,
      _meta: { ...work.result._meta, [MCP_PAYMENT_RESPONSE_META_KEY]: settlement },
    };
  };
}

/** The offers for one call of a tool at `price`, on the billing's terms. */
function toolOffers<Args>(billing: Billing, price: ToolPrice<Args>, args: Args): PaymentRequirements[] {
  const { terms } = billing;
  const base = {
    network: terms.network,
    asset: terms.asset,
    payTo: terms.payTo,
    maxTimeoutSeconds: terms.maxTimeoutSeconds,
  };
  if (price.scheme === "exact") {
    return [
      { ...base, scheme: "exact", amount: price.priceAtomic.toString(), extra: { ...terms.assetDomain } },
    ];
  }
  if (!terms.facilitatorAddress) return [];
  const maxAtomic = typeof price.maxAtomic === "function" ? price.maxAtomic(args) : price.maxAtomic;
  return [
    {
      ...base,
      scheme: "upto",
      amount: maxAtomic.toString(),
      extra: { ...terms.assetDomain, facilitatorAddress: terms.facilitatorAddress },
    },
  ];
}

/** A plain tool error for people. */
export function toolError(message: string, structuredContent?: Record<string, unknown>): CallToolResult {
  return {
    isError: true,
    content: [{ type: "text", text: message }],
    ...(structuredContent ? { structuredContent } : {}),
  };
}

function minimum(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
