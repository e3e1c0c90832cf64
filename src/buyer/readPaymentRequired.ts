import { TollgateError } from "../errors/index.js";
import {
  decodePaymentRequiredHeader,
  PAYMENT_REQUIRED_HEADER,
  type PaymentRequired,
} from "../protocol/index.js";
import { providerOrigin } from "./spendingPolicy.js";

/**
 * What a seller's 402 asks for, and where its payment goes: the URL asked for, or where the 402 came
 * from after a redirect within the same origin. The body is discarded. A 402 from another origin,
 * which the policy did not judge, or one without a usable `PAYMENT-REQUIRED` header is refused
 * (`TOLLGATE_PAYMENT_REQUIRED`).
 */
export async function readPaymentRequired(
  response: Response,
  url: string,
  origin: string,
): Promise<{ paymentRequired: PaymentRequired; paidUrl: string }> {
  await response.body?.cancel().catch(() => undefined);
  const paidUrl = response.redirected && response.url !== url ? response.url : url;
  if (providerOrigin(paidUrl) !== origin) {
    throw new TollgateError({
      code: "TOLLGATE_PAYMENT_REQUIRED",
      shortMessage: `${url} redirected to ${paidUrl}, whose 402 is not paid: the spending policy judges ${origin}; send the request to ${providerOrigin(paidUrl)} itself to pay it under its own caps`,
      details: { url, redirectedTo: paidUrl },
    });
  }
  const decoded = decodePaymentRequiredHeader(response.headers.get(PAYMENT_REQUIRED_HEADER));
  if (!decoded.ok) {
    throw new TollgateError({
      code: "TOLLGATE_PAYMENT_REQUIRED",
      shortMessage: `${origin} answered 402 without a usable x402 v2 PAYMENT-REQUIRED header: ${decoded.message}`,
      details: { url, reason: decoded.reason },
    });
  }
  return { paymentRequired: decoded.paymentRequired, paidUrl };
}
