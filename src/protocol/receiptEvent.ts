import { z } from "zod";
import { TollgateError } from "../errors/index.js";
import { describeIssue } from "./describeIssue.js";
import { caip2NetworkSchema, uint256StringSchema } from "./primitives.js";
import { ReasonCode } from "./reasonCodes.js";

/** The field of the final stream chunk that carries the receipt. */
export const RECEIPT_FIELD = "x402_receipt";

/** The SSE event that ends an OpenAI-style stream; the gateway sends it right after the receipt. */
export const SSE_DONE_EVENT = "data: [DONE]\n\n";

const tokenCountSchema = z.number().int().nonnegative();

/** What a stream was charged: the settlement, the usage it was computed from, and the prices. */
export const streamReceiptSchema = z.looseObject({
  success: z.boolean(),
  errorReason: z.string().optional(),
  /** Charged, in the asset's atomic units; "0" when nothing was charged. */
  amount: uint256StringSchema,
  /** The authorized maximum, in atomic units. */
  maxAmount: uint256StringSchema,
  /** Settlement transaction hash; empty when nothing was charged. */
  transaction: z.string(),
  network: caip2NetworkSchema,
  payer: z.string(),
  asset: z.string(),
  model: z.string(),
  usage: z.looseObject({
    prompt_tokens: tokenCountSchema,
    completion_tokens: tokenCountSchema,
    total_tokens: tokenCountSchema.optional(),
  }),
  /**
   * Who counted the prompt: `backend` (its report, believed) or `gateway` (the backend reported none, or
   * one not believed: the gateway counted it itself, as OpenAI documents, and a buyer may check that count).
   */
  promptCountedBy: z.enum(["backend", "gateway"]).optional(),
  /** Usage per unit (`input_tokens`, `cached_input_tokens`, `output_tokens`, `images`, `compute_ms`, …): what the charge is computed from. */
  units: z.record(z.string(), tokenCountSchema).optional(),
  prices: z.looseObject({
    inputPerMTokAtomic: uint256StringSchema,
    outputPerMTokAtomic: uint256StringSchema,
    fixedFeeAtomic: uint256StringSchema,
    /** Atomic units per unit scale (1M tokens, an image, a second of `compute_ms`, 1M bytes, a request). */
    units: z.record(z.string(), uint256StringSchema).optional(),
  }),
  /** The settlement's extensions: the seller's signed receipts (x402 `offer-receipt`, Tollgate's usage receipt). */
  extensions: z.record(z.string(), z.unknown()).optional(),
});

export type StreamReceipt = z.infer<typeof streamReceiptSchema>;

/** Fields of the chunk around the receipt; pass the stream's own `id` so clients see one id. */
export type ReceiptEventEnvelope = {
  id?: string;
  /** Unix seconds; defaults to now. */
  created?: number;
  /** `chat.completion.chunk` (default) or `text_completion` for `/v1/completions` streams. */
  object?: string;
  /** Defaults to the receipt's model. */
  model?: string;
  /**
   * Defaults to `[]`, the shape of OpenAI's usage chunk, for clients that asked for usage. For
   * clients that did not, pass one empty choice: strict clients read `choices[0]` of every chunk.
   */
  choices?: unknown[];
  /** The charged usage in OpenAI's shape, for clients that asked for the usage chunk. */
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens?: number };
};

export type ParseReceiptEventReturnType =
  | { ok: true; receipt: StreamReceipt }
  | { ok: false; reason: ReasonCode; message: string; field?: string };

const MAX_RECEIPT_EVENT_LENGTH = 64 * 1024;

/**
 * The SSE text of the receipt event sent after the last content chunk and before `[DONE]`: an
 * ordinary, unnamed `data:` event holding a chunk with `choices: []` (the shape of OpenAI's own
 * usage chunk) plus an `x402_receipt` field. OpenAI clients yield it as one more chunk with no
 * choices; they would throw on a top-level `error` field, so a failed settlement is reported
 * inside the receipt (`success: false`, `errorReason`).
 * @example
 * await stream.write(formatReceiptEvent(receipt, { id: completionId }));
 * await stream.write(SSE_DONE_EVENT);
 */
export function formatReceiptEvent(receipt: StreamReceipt, envelope: ReceiptEventEnvelope = {}): string {
  const checked = streamReceiptSchema.safeParse(receipt);
  if (!checked.success) {
    throw new TollgateError({
      code: "TOLLGATE_INTERNAL",
      shortMessage: `Refusing to send an invalid receipt (${describeIssue(checked.error).message}).`,
      details: { receipt },
    });
  }
  const chunk = {
    id: envelope.id ?? "",
    object: envelope.object ?? "chat.completion.chunk",
    created: envelope.created ?? Math.floor(Date.now() / 1000),
    model: envelope.model ?? receipt.model,
    choices: envelope.choices ?? [],
    ...(envelope.usage ? { usage: envelope.usage } : {}),
    [RECEIPT_FIELD]: receipt,
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/**
 * Reads a receipt from one stream event: the `data:` payload string, a full `data: …` event,
 * or a chunk object an OpenAI client already parsed. Events without a receipt answer
 * `tollgate_receipt_absent`; malformed receipts, or ones charging above the maximum,
 * `tollgate_receipt_invalid`. Never throws.
 */
export function parseReceiptEvent(eventData: string | object): ParseReceiptEventReturnType {
  const chunk = typeof eventData === "string" ? parseEventText(eventData) : eventData;
  if (typeof chunk !== "object" || chunk === null || !(RECEIPT_FIELD in chunk)) {
    return { ok: false, reason: ReasonCode.receiptAbsent, message: "this event carries no receipt" };
  }
  const parsed = streamReceiptSchema.safeParse((chunk as Record<string, unknown>)[RECEIPT_FIELD]);
  if (!parsed.success) {
    return { ok: false, reason: ReasonCode.receiptInvalid, ...describeIssue(parsed.error, RECEIPT_FIELD) };
  }
  const receipt = parsed.data;
  if (BigInt(receipt.amount) > BigInt(receipt.maxAmount)) {
    return {
      ok: false,
      reason: ReasonCode.receiptInvalid,
      message: `${RECEIPT_FIELD}.amount: ${receipt.amount} exceeds the authorized maximum ${receipt.maxAmount}`,
      field: `${RECEIPT_FIELD}.amount`,
    };
  }
  return { ok: true, receipt };
}

function parseEventText(text: string): unknown {
  if (text.length > MAX_RECEIPT_EVENT_LENGTH) return undefined;
  const data = text.trimStart().startsWith("data:")
    ? text
        .split(/\r\n|\r|\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5))
        .join("\n")
    : text;
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}
