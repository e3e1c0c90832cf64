import { z } from "zod";
import { TollgateError } from "../errors/index.js";
import type { PaymentRecord } from "./PaymentLedger.js";
import { isPaymentStatus, type PaymentStatus } from "./paymentStatus.js";

/** The select list every payments query uses: money as text so no driver turns it into a float. */
export const paymentColumns = `id, network, payer, nonce, scheme, model, route, asset, pay_to,
  max_atomic::text AS max_atomic, prompt_tokens, completion_tokens, usage, charge_atomic::text AS charge_atomic,
  transaction, status, error, payload, requirements, created_at, updated_at, settled_at, request_id`;

const atomic = z
  .string()
  .regex(/^[0-9]+$/)
  .transform((value) => BigInt(value));
const integer = z.union([z.number(), z.string(), z.bigint()]).transform((value) => Number(value));
const timestamp = z.union([z.date(), z.string()]).transform((value) => new Date(value));

const paymentRowSchema = z.object({
  id: integer,
  network: z.string(),
  payer: z.string(),
  nonce: z.string(),
  scheme: z.string(),
  model: z.string(),
  route: z.string(),
  asset: z.string(),
  pay_to: z.string(),
  max_atomic: atomic,
  prompt_tokens: integer.nullable(),
  completion_tokens: integer.nullable(),
  usage: z
    .union([z.string().transform((text) => JSON.parse(text) as unknown), z.unknown()])
    .pipe(z.record(z.string(), z.number().int().nonnegative()).nullable())
    .optional()
    .transform((value) => value ?? null),
  charge_atomic: atomic.nullable(),
  transaction: z.string().nullable(),
  status: z.custom<PaymentStatus>(isPaymentStatus),
  error: z.string().nullable(),
  payload: z.unknown(),
  requirements: z.unknown(),
  created_at: timestamp,
  updated_at: timestamp,
  settled_at: timestamp.nullable(),
  request_id: z.string().nullable().optional(),
});

/** Maps a `payments` row (selected with `paymentColumns`) to a `PaymentRecord`. */
export function toPaymentRecord(row: unknown): PaymentRecord {
  const parsed = paymentRowSchema.safeParse(row);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TollgateError({
      code: "TOLLGATE_LEDGER_FAILED",
      shortMessage: `payments row has an unexpected ${issue?.path.join(".") ?? "shape"}`,
      details: { issues: parsed.error.issues },
      cause: parsed.error,
    });
  }
  const r = parsed.data;
  return {
    id: r.id,
    network: r.network,
    payer: r.payer,
    nonce: r.nonce,
    scheme: r.scheme,
    model: r.model,
    route: r.route,
    asset: r.asset,
    payTo: r.pay_to,
    maxAtomic: r.max_atomic,
    promptTokens: r.prompt_tokens,
    completionTokens: r.completion_tokens,
    usage: r.usage,
    chargeAtomic: r.charge_atomic,
    transaction: r.transaction,
    status: r.status,
    error: r.error,
    paymentPayload: r.payload,
    paymentRequirements: r.requirements,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    settledAt: r.settled_at,
    requestId: r.request_id ?? null,
  };
}
