import { z } from "zod";
import { caip2NetworkSchema, uint256StringSchema } from "./primitives.js";

// Wire objects are loose: unknown fields pass through untouched so nothing a signer or a
// newer peer added is lost on the way to the facilitator.

const optionalRecord = z
  .record(z.string(), z.unknown())
  .nullish()
  .transform((value) => value ?? undefined);

/** `ResourceInfo`: what the payment is for. */
export const resourceInfoSchema = z.looseObject({
  url: z.string().min(1),
  description: z
    .string()
    .nullish()
    .transform((value) => value ?? undefined),
  mimeType: z
    .string()
    .nullish()
    .transform((value) => value ?? undefined),
});

/** x402 v2 `PaymentRequirements`: one way to pay, as listed in `accepts`. */
export const paymentRequirementsSchema = z.looseObject({
  scheme: z.string().min(1),
  network: caip2NetworkSchema,
  amount: uint256StringSchema,
  asset: z.string().min(1),
  payTo: z.string().min(1),
  maxTimeoutSeconds: z.number().int().positive(),
  // Core's type requires `extra`; absent means "nothing extra".
  extra: z
    .record(z.string(), z.unknown())
    .nullish()
    .transform((value) => value ?? {}),
});

/** x402 v2 `PaymentRequired`: the body of the `PAYMENT-REQUIRED` header. */
export const paymentRequiredSchema = z.looseObject({
  x402Version: z.literal(2),
  error: z
    .string()
    .nullish()
    .transform((value) => value ?? undefined),
  resource: resourceInfoSchema,
  accepts: z.array(paymentRequirementsSchema).min(1),
  extensions: optionalRecord,
});

/** x402 v2 `PaymentPayload` envelope; the scheme-specific `payload` is checked separately. */
export const paymentPayloadEnvelopeSchema = z.looseObject({
  x402Version: z.literal(2),
  resource: resourceInfoSchema.nullish().transform((value) => value ?? undefined),
  accepted: paymentRequirementsSchema,
  payload: z.record(z.string(), z.unknown()),
  extensions: optionalRecord,
});

/** x402 v2 settlement result, the body of `PAYMENT-RESPONSE`; for `upto`, `amount` is the actual charge. */
export const settleResponseSchema = z.looseObject({
  success: z.boolean(),
  errorReason: z.string().optional(),
  errorMessage: z.string().optional(),
  payer: z.string().optional(),
  transaction: z.string(),
  network: caip2NetworkSchema,
  // A batch-settlement voucher's settlement moves nothing and states its charge in
  // `extra.chargedAmount`, with `amount` empty.
  amount: z.union([uint256StringSchema, z.literal("")]).optional(),
  extensions: optionalRecord,
  extra: optionalRecord,
});

/** x402 v2 verification result from a facilitator's `/verify`. */
export const verifyResponseSchema = z.looseObject({
  isValid: z.boolean(),
  invalidReason: z.string().optional(),
  invalidMessage: z.string().optional(),
  payer: z.string().optional(),
  extensions: optionalRecord,
  extra: optionalRecord,
});
