import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { isTollgateError } from "../errors/index.js";
import { type Billing, billHandlerFailure, proxyToBackend, readGuardedText } from "../gateway/index.js";
import { encodeBase64Json, PAYMENT_SIGNATURE_HEADER, type PaymentRequired } from "../protocol/index.js";
import {
  MCP_PAYMENT_META_KEY,
  MCP_PAYMENT_RESPONSE_META_KEY,
  paymentRequiredResult,
} from "./mcpPaymentMeta.js";
import { type ToolExtra, toolError } from "./paidTool.js";

export type PaidInferenceToolParameters<Args> = {
  billing: Billing;
  /** Where the tool is served (the MCP endpoint's URL); the tool's resource is `<endpointUrl>/tools/<name>`. */
  endpointUrl: string;
  name: string;
  /** The chat completion request a call makes (`model` must be one the billing serves). */
  chatRequest: (args: Args) => Record<string, unknown>;
};

/**
 * A paid MCP tool that runs one chat completion through the gateway's own billing: the call is
 * quoted like `POST /v1/chat/completions` (upto for the request's maximum, exact where the model
 * has a price), the backend receives exactly the priced request, the output is metered and cut at
 * the authorized limit, and the charge is settled from what was delivered.
 */
export function paidInferenceTool<Args>({
  billing,
  endpointUrl,
  name,
  chatRequest,
}: PaidInferenceToolParameters<Args>): (args: Args, extra: ToolExtra) => Promise<CallToolResult> {
  const resourceUrl = `${endpointUrl.replace(/\/+$/, "")}/tools/${name}`;
  return async function callPaidInferenceTool(args, extra) {
    const headers = new Headers();
    const payment = extra._meta?.[MCP_PAYMENT_META_KEY];
    // The payment is checked exactly as the HTTP header is: same decoder, same limits.
    if (payment !== undefined && payment !== null)
      headers.set(PAYMENT_SIGNATURE_HEADER, encodeBase64Json(payment));
    const decision = await billing.begin({
      url: resourceUrl,
      headers,
      body: { ...chatRequest(args), stream: false },
      routeKind: "chat",
    });
    if (decision.action === "respond") {
      if (decision.status === 402) return paymentRequiredResult(decision.body as unknown as PaymentRequired);
      const error = (decision.body.error ?? {}) as { message?: string; code?: string };
      return toolError(`${name}: ${error.message ?? `refused (${decision.status})`}`, {
        code: error.code ?? null,
        status: decision.status,
      });
    }
    const { quote, session } = decision;
    let text: string;
    // Once the backend answered, it had the whole prompt: a caller that cancels from then on pays for it.
    let promptTaken = false;
    try {
      const response = await proxyToBackend({
        model: quote.model,
        body: quote.backendBody,
        signal: extra.signal,
      });
      if (!response.ok) {
        await response.body?.cancel().catch(() => undefined);
        throw new Error(`the model backend answered HTTP ${response.status}`);
      }
      promptTaken = true;
      text = await readGuardedText(response.body, {
        idleMs: quote.model.backend.timeoutMs,
        deadlineAt: session.deadlineAt,
        modelId: quote.model.id,
      });
    } catch (error) {
      // Cancelled once the backend had the whole request (while it read it, or answered): the prompt is charged.
      const promptCharged =
        extra.signal.aborted &&
        (promptTaken ||
          (isTollgateError(error, "TOLLGATE_BACKEND_FAILED") && error.details.promptSent === true));
      if (promptTaken && extra.signal.aborted) await session.leftAfterPrompt();
      else await billHandlerFailure(session, error, extra.signal);
      return toolError(
        promptCharged
          ? `${name} was cancelled after the model read the prompt; the prompt was charged`
          : `${name} failed: ${(error as Error).message}; nothing was charged`,
      );
    }
    const completed = await session.completeJson(text);
    if (!completed.ok) {
      const error = (completed.body.error ?? {}) as { message?: string };
      return toolError(`${name} failed: ${error.message ?? "the backend answered nothing usable"}`);
    }
    const settlement = { ...completed.outcome.settlement, payer: session.payer };
    if (!settlement.success) {
      const failed = toolError(
        `${name}: settlement failed (${settlement.errorReason ?? "unknown reason"}); the charge is recorded as owed`,
      );
      return { ...failed, _meta: { [MCP_PAYMENT_RESPONSE_META_KEY]: settlement } };
    }
    const answer = JSON.parse(completed.body) as { choices?: Array<{ message?: Record<string, unknown> }> };
    // Every choice was metered and charged (a request with n above 1): the caller gets each of them.
    const outputs = (answer.choices ?? []).map((choice) => messageOutput(choice.message));
    const [first = { text: "" }] = outputs;
    const usage = completed.outcome.usage;
    return {
      content: outputs.flatMap(({ text, more }) => [
        { type: "text" as const, text },
        ...(more ? [{ type: "text" as const, text: JSON.stringify(more) }] : []),
      ]),
      structuredContent: {
        text: first.text,
        ...(first.more ? { more: first.more } : {}),
        ...(outputs.length > 1 ? { choices: outputs } : {}),
        model: quote.model.id,
        usage: { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens },
        chargedAtomic: completed.outcome.chargeAtomic.toString(),
      },
      _meta: { [MCP_PAYMENT_RESPONSE_META_KEY]: settlement },
    };
  };
}

/**
 * What one choice's message gives the caller: its content as text, and everything else it carries
 * (reasoning, a refusal, tool calls), which was metered and charged as output too.
 */
function messageOutput(message: Record<string, unknown> | undefined): {
  text: string;
  more?: Record<string, unknown>;
} {
  const { role: _role, content, ...rest } = message ?? {};
  const more = Object.fromEntries(
    Object.entries(rest).filter(
      ([, value]) =>
        value !== null &&
        value !== undefined &&
        value !== "" &&
        !(Array.isArray(value) && value.length === 0),
    ),
  );
  return { text: contentText(content), ...(Object.keys(more).length > 0 ? { more } : {}) };
}

/** A message's content as text: a string, or the text of its parts. */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((part) =>
      typeof (part as { text?: unknown })?.text === "string" ? (part as { text: string }).text : "",
    )
    .join("");
}
