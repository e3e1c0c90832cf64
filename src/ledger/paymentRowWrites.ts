import type { AlsoWrite, ChannelRecord } from "./ChannelLedger.js";
import { normalizeAuthorizationKey } from "./normalizeAuthorizationKey.js";
import type { ClaimPaymentInput, TokenUsage } from "./PaymentLedger.js";
import { atomicParam, jsonParam, textParam, tokenCountParam } from "./sqlValues.js";

/** The columns a claim writes, in the order of `claimParams`. */
export const claimColumns =
  "network, payer, nonce, scheme, model, route, asset, pay_to, max_atomic, payload, requirements, request_id";

/** `$1 … $12` of `claimParams`, cast as their columns need. */
export const claimValues = "$1, $2, $3, $4, $5, $6, $7, $8, $9::numeric, $10::jsonb, $11::jsonb, $12";

/** A claim's values, checked, as parameters $1 … $12 (see `claimColumns`). */
export function claimParams(input: ClaimPaymentInput): unknown[] {
  const key = normalizeAuthorizationKey(input);
  return [
    key.network,
    key.payer,
    key.nonce,
    textParam(input.scheme, "scheme"),
    textParam(input.model, "model"),
    textParam(input.route, "route"),
    textParam(input.asset, "asset"),
    textParam(input.payTo, "payTo"),
    atomicParam(input.maxAtomic, "maxAtomic"),
    jsonParam(input.paymentPayload, "paymentPayload"),
    jsonParam(input.paymentRequirements, "paymentRequirements"),
    input.requestId === undefined ? null : textParam(input.requestId, "requestId"),
  ];
}

/** A usage's units, checked: the token totals when it names none. */
export function unitsOf(usage: TokenUsage): Record<string, number> {
  const units: Record<string, number> = usage.units ?? {
    input_tokens: usage.promptTokens,
    output_tokens: usage.completionTokens,
  };
  const out: Record<string, number> = {};
  for (const [unit, count] of Object.entries(units)) out[unit] = tokenCountParam(count, `usage.${unit}`);
  return out;
}

/**
 * The call of migration 7's `tollgate_charge_voucher_row` (a JSON voucher request's row and its channel's
 * charge), with its 23 parameters; it returns `written`, 1 or 0.
 */
export const CHARGE_VOUCHER_ROW_CALL = `SELECT tollgate_charge_voucher_row($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::numeric,
  $11::jsonb, $12::jsonb, $13, $14, $15::numeric, $16, $17, $18::jsonb, $19, $20::numeric, $21::numeric, $22,
  $23::bigint) AS written`;

/** How many parameters `CHARGE_VOUCHER_ROW_CALL` takes. */
export const CHARGE_VOUCHER_ROW_PARAMS = new Set(CHARGE_VOUCHER_ROW_CALL.match(/\$[0-9]+/g)).size;

/** How a request charged on a channel ended, for its payment row. */
export type ChannelRowOutcome = { usage: TokenUsage; chargeAtomic: bigint } | { failed: string };

/**
 * The statement that finishes a voucher request's payment row, written with the channel's update
 * (`ChannelUpdate.alsoWrite`): settled (or zero) with its usage and charge, or failed. `unwritten` is
 * the claim of a row not written while the request was served: the whole row is inserted then. It
 * returns the row's id, and nothing when the row is not open (or its authorization is held already).
 */
export function channelRowWrite(
  id: number,
  outcome: ChannelRowOutcome,
  unwritten?: ClaimPaymentInput,
): AlsoWrite {
  if (!Number.isSafeInteger(id) || id < 1)
    throw new Error(`payment id must be a positive integer, got ${id}`);
  const charged = "chargeAtomic" in outcome;
  const status = charged ? (outcome.chargeAtomic === 0n ? "zero" : "settled") : "failed";
  const finish = charged
    ? [
        status,
        atomicParam(outcome.chargeAtomic, "chargeAtomic"),
        tokenCountParam(outcome.usage.promptTokens, "promptTokens"),
        tokenCountParam(outcome.usage.completionTokens, "completionTokens"),
        jsonParam(unitsOf(outcome.usage), "usage"),
        null,
      ]
    : [status, null, null, null, null, textParam(outcome.failed, "reason")];
  if (unwritten) {
    const claim = claimParams(unwritten);
    // $13 … $18 finish the row, $19 is its id; a charge above the maximum inserts nothing.
    return {
      ...(charged
        ? {
            withCharge: (channelId: string, next: ChannelRecord) => ({
              text: CHARGE_VOUCHER_ROW_CALL,
              params: [
                id,
                ...claim,
                ...finish.slice(0, 5),
                channelId,
                atomicParam(next.chargedAtomic, "chargedAtomic"),
                atomicParam(next.signedMaxAtomic, "signedMaxAtomic"),
                textParam(next.signature, "signature"),
                String(next.lastRequestAt),
              ],
            }),
          }
        : {}),
      text: `INSERT INTO payments (id, ${claimColumns}, status, charge_atomic, prompt_tokens, completion_tokens, usage, error, settled_at)
       OVERRIDING SYSTEM VALUE
       SELECT $19, ${claimValues}, $13, $14::numeric, $15, $16, $17::jsonb, $18,
              CASE WHEN $13 = 'failed' THEN NULL ELSE now() END
       WHERE $14::numeric IS NULL OR $14::numeric <= $9::numeric
       ON CONFLICT (network, payer, nonce) DO NOTHING
       RETURNING id`,
      params: [...claim, ...finish, id],
    };
  }
  return charged
    ? {
        text: `UPDATE payments SET status = $2, charge_atomic = $3::numeric, prompt_tokens = $4, completion_tokens = $5,
           usage = $6::jsonb, settled_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('serving', 'metered') AND max_atomic >= $3::numeric
         RETURNING id`,
        params: [id, ...finish.slice(0, 5)],
      }
    : {
        text: `UPDATE payments SET status = $2, error = $3, updated_at = now()
         WHERE id = $1 AND status IN ('claimed', 'serving') RETURNING id`,
        params: [id, status, finish[5]],
      };
}
