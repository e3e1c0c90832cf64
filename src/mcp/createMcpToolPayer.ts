import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import {
  authorizePayment,
  type BuyerPaymentOptions,
  bookedChargeOf,
  createPaymentContext,
  policyRefusedError,
  providerOrigin,
  recordReceipt,
  type SpendStore,
  selectOffer,
  statedChargeOf,
  TOOL_REFUSED_NOTE,
} from "../buyer/index.js";
import type { SettleResponse } from "../protocol/index.js";
import {
  MCP_PAYMENT_META_KEY,
  readPaymentRequiredResult,
  readPaymentResponseMeta,
} from "./mcpPaymentMeta.js";

export type CreateMcpToolPayerParameters = BuyerPaymentOptions;

/** One tool call, paid if the tool asked for payment. */
export type PaidToolCall = {
  result: CallToolResult;
  /** The settlement the tool returned, when it was paid. */
  settlement: SettleResponse | undefined;
  /** What was authorized, when a payment was signed. */
  maxAtomic: bigint | undefined;
};

export type PaidToolCallOptions = {
  /** Names the provider for the policy's `providers` (its URL); default `mcp://<server name>`. */
  server?: string | undefined;
  /** Bound on each of the two calls (ms); the MCP SDK's default otherwise (60 s). */
  timeoutMs?: number | undefined;
};

export type McpToolPayer = {
  readonly address: string;
  /**
   * Calls a tool of `client`'s server; when it answers with an x402 `PaymentRequired`, checks the
   * policy, reserves the maximum, signs and calls again with `_meta["x402/payment"]`, then books
   * the settlement of `_meta["x402/payment-response"]`. A refusal throws `TOLLGATE_POLICY_REFUSED`.
   */
  callTool(
    client: Client,
    call: { name: string; arguments?: Record<string, unknown> | undefined },
    options?: PaidToolCallOptions,
  ): Promise<PaidToolCall>;
  spendStore(): Promise<SpendStore>;
  /** Resolves when every receipt's on-chain check (with `rpcUrl`) has ended. */
  idle(): Promise<void>;
  /** Waits for `idle()`, then closes the spend store if this payer opened it. */
  close(): Promise<void>;
};

/**
 * A payer for paid MCP tools of any server that follows the x402 MCP transport, under the same
 * spending policy and spend store as `createPayingFetch`.
 * @example
 * const payer = createMcpToolPayer({ privateKey, policy: { perCall: "$0.01" } });
 * const { result, settlement } = await payer.callTool(client, { name: "summarize", arguments: { text } });
 */
export function createMcpToolPayer(parameters: CreateMcpToolPayerParameters): McpToolPayer {
  const { signer, context, closeStore, idle, freeLapsed } = createPaymentContext({
    ...parameters,
    caller: "createMcpToolPayer",
    fetch: globalThis.fetch,
  });
  const { policy, store, emit } = context;

  async function callTool(
    mcp: Client,
    call: { name: string; arguments?: Record<string, unknown> | undefined },
    options: PaidToolCallOptions = {},
  ): Promise<PaidToolCall> {
    const requestOptions = options.timeoutMs === undefined ? undefined : { timeout: options.timeoutMs };
    // A reset before any answer is almost always a kept-alive connection the server had just closed:
    // sent once more. Safe for a payment too: it settles at most once, and the server refuses a replay.
    const send = (params: Parameters<Client["callTool"]>[0]) =>
      mcp.callTool(params, undefined, requestOptions).catch((error: unknown) => {
        if (connectionReset(error)) return mcp.callTool(params, undefined, requestOptions);
        throw error;
      }) as Promise<CallToolResult>;
    // Open the store before talking to the server: opening may take a moment.
    await store();
    await freeLapsed();
    const first = await send(call);
    const paymentRequired = readPaymentRequiredResult(first);
    if (!paymentRequired) return { result: first, settlement: undefined, maxAtomic: undefined };

    const server = options.server ?? `mcp://${mcp.getServerVersion()?.name ?? "server"}`;
    const origin = server.includes("://") && !server.startsWith("mcp://") ? providerOrigin(server) : server;
    const url = paymentRequired.resource.url;
    // Over MCP the payer signs upto and exact; channels (batch-settlement) need state it does not keep.
    const payable = paymentRequired.accepts.filter(
      (offer) => offer.scheme === "upto" || offer.scheme === "exact",
    );
    const selected = await selectOffer({
      accepts: payable.length > 0 ? payable : paymentRequired.accepts,
      request: undefined,
      policy,
      origin,
    });
    if (!selected.ok) {
      emit({ type: "refused", url, origin, refusal: selected.refusal });
      throw policyRefusedError(selected.refusal);
    }
    const attempt = await authorizePayment(context, {
      url,
      origin,
      paymentRequired,
      choice: selected.choice,
      request: undefined,
      firstRequest: false,
      model: call.name,
    });
    const spend = await store();
    let paid: CallToolResult;
    try {
      paid = await send({ ...call, _meta: { [MCP_PAYMENT_META_KEY]: attempt.payload } });
    } catch (error) {
      // The call may have reached the server: the maximum stays reserved until the deadline.
      await spend.note(attempt.paymentId, `no result after sending: ${(error as Error).message}`);
      throw error;
    }
    const settlement = readPaymentResponseMeta(paid);
    if (settlement) {
      const statedAtomic = statedChargeOf(settlement, attempt.choice.offer);
      await recordReceipt(context, attempt, {
        source: "mcp",
        success: settlement.success,
        errorReason: settlement.errorReason,
        chargedAtomic: settlement.success ? bookedChargeOf(attempt.choice.offer, statedAtomic) : 0n,
        statedAtomic,
        transaction: settlement.transaction,
        network: settlement.network,
        payer: settlement.payer,
        usage: undefined,
        extra: settlement.extra,
        extensions: settlement.extensions,
      });
    } else {
      // No settlement: the maximum stays reserved until the deadline. A tool that says it refused
      // the payment holds the signed authorization all the same.
      const refusal = readPaymentRequiredResult(paid);
      const reason = refusal
        ? `${TOOL_REFUSED_NOTE}: ${(refusal.error ?? "no reason given").slice(0, 300)}`
        : "the paid tool call returned no settlement";
      await spend.note(attempt.paymentId, reason);
      emit({ type: "unreceipted", paymentId: attempt.paymentId, origin, reason });
    }
    return { result: paid, settlement, maxAtomic: attempt.maxAtomic };
  }

  return {
    address: signer.address,
    callTool,
    spendStore: store,
    idle,
    async close() {
      await idle();
      await closeStore();
    },
  };
}

/** True when a connection broke before any answer, typically a kept-alive one the server closed. */
function connectionReset(error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown } })?.cause?.code;
  return code === "ECONNRESET" || code === "EPIPE" || code === "UND_ERR_SOCKET";
}
