import { STATUS_CODES } from "node:http";
import { createPublicClient, erc20Abi, http } from "viem";
import { formatMoney } from "../pricing/index.js";
import {
  decodePaymentRequiredHeader,
  PAYMENT_REQUIRED_HEADER,
  type PaymentRequirements,
  ReasonCode,
} from "../protocol/index.js";

export type ExplainHttpFailureParameters = {
  status: number;
  headers: Headers;
  /** The response body as text (already read). */
  body: string;
  /** The buyer's address, to name it. */
  payer: string;
  /** A chain RPC, to read the buyer's balance when the seller says it is short. */
  rpcUrl?: string | undefined;
};

/** A non-2xx answer told in words: its status line, and for a refused payment, why and with which figures. */
export type HttpFailure = {
  status: number;
  /** `HTTP 402 Payment Required`. */
  statusLine: string;
  /** The x402 reason of a 402, when the seller gave one. */
  reason?: string;
  /** One sentence for a person. */
  message: string;
};

/** Explains a seller's non-2xx answer: the x402 reason of a 402 in a sentence, or the error message of the body. */
export async function explainHttpFailure({
  status,
  headers,
  body,
  payer,
  rpcUrl,
}: ExplainHttpFailureParameters): Promise<HttpFailure> {
  const statusLine = `HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ""}`;
  if (status === 402) {
    const decoded = decodePaymentRequiredHeader(headers.get(PAYMENT_REQUIRED_HEADER));
    if (decoded.ok) {
      const raw = decoded.paymentRequired.error ?? "";
      const [reason = "", ...rest] = raw.split(": ");
      const offer = decoded.paymentRequired.accepts[0];
      const message = await explainRefusal({ reason, sellerText: rest.join(": "), offer, payer, rpcUrl });
      return { status, statusLine, reason: reason || undefined, message };
    }
  }
  return { status, statusLine, message: errorMessageOf(body) };
}

type RefusalContext = {
  reason: string;
  sellerText: string;
  offer: PaymentRequirements | undefined;
  payer: string;
  rpcUrl: string | undefined;
};

async function explainRefusal({ reason, sellerText, offer, payer, rpcUrl }: RefusalContext): Promise<string> {
  const refused = "the seller refused the payment";
  const network = offer?.network ?? "its network";
  const token = offer ? tokenName(offer) : "the token";
  const maximum = offer ? `, and this request may cost up to ${formatMoney(BigInt(offer.amount))}` : "";
  switch (reason) {
    case ReasonCode.permit2InsufficientBalance:
    case ReasonCode.insufficientFunds: {
      const balance = offer && rpcUrl ? await readBalance(rpcUrl, offer.asset, payer) : undefined;
      const holds =
        balance === undefined
          ? `holds too little ${token} on ${network}`
          : `has ${formatMoney(balance)} ${token} on ${network}`;
      const inFlight = sellerText.includes("in flight") ? " counting its payments still in flight" : "";
      return `${refused}: the buyer ${payer} ${holds}${inFlight}${maximum}; fund the wallet and retry`;
    }
    case ReasonCode.payerInDebt:
      return `${refused}: an earlier charge to the buyer ${payer} on ${network} is unpaid; this seller serves it again once that charge is paid (restore the ${token} balance or the Permit2 approval, or deposit into the channel the buyer withdrew from before the seller claimed its charges)`;
    case ReasonCode.permit2AllowanceRequired:
      return `${refused}: the buyer ${payer} has not approved Permit2 to spend its ${token} on ${network}; approve it, or use a seller that sponsors the approval`;
    case ReasonCode.permit2DeadlineExpired:
    case ReasonCode.eip2612DeadlineExpired:
    case ReasonCode.exactValidBeforeExpired:
      return `${refused}: the authorization had already expired when the seller checked it; check this machine's clock`;
    case ReasonCode.permit2NotYetValid:
    case ReasonCode.exactValidAfterInFuture:
      return `${refused}: the authorization is not valid yet; check this machine's clock`;
    case ReasonCode.authorizationExpiresTooSoon:
      return `${refused}: the authorization expires before this request could finish and settle (${sellerText})`;
    case ReasonCode.permit2InvalidSignature:
    case ReasonCode.exactInvalidSignature:
      return `${refused}: the signature does not verify for ${payer} on ${network}; the key, chain or token domain differ from the seller's`;
    case ReasonCode.permit2RecipientMismatch:
    case ReasonCode.exactRecipientMismatch:
      return `${refused}: the authorization pays another address than the seller's payTo`;
    case ReasonCode.uptoFacilitatorMismatch:
    case ReasonCode.uptoUnauthorizedFacilitator:
      return `${refused}: the authorization names another facilitator than the one that would settle it (a replica behind a load balancer without session affinity?); retry`;
    case "invalid_batch_settlement_evm_cumulative_amount_mismatch":
    case "invalid_batch_settlement_evm_cumulative_below_claimed":
      // The buyer resyncs a channel only from the chain (the official client checks the seller's state there).
      return rpcUrl
        ? `${refused}: its record of the buyer's payment channel is not the buyer's, and the chain did not bear it out; see tollgate channels --buyer --rpc URL and the disputes in tollgate spend`
        : `${refused}: its record of the buyer's payment channel is not this spend store's (a receipt that never arrived, another spend store paying this seller with the same key, or a devnet started afresh), and the buyer resyncs only by reading the channel on chain: run again with --rpc URL (the chain's RPC; tollgate dev prints it)`;
    case ReasonCode.gasSponsoringRefused:
      return `${refused}: its facilitator will not pay for this Permit2 approval${sellerText ? ` (${sellerText})` : ""}; approve Permit2 on ${token} first`;
    case "":
      return `${refused} without a reason`;
    default:
      return `${refused}: ${reason}${sellerText ? ` (${sellerText})` : ""}`;
  }
}

function tokenName(offer: PaymentRequirements): string {
  const name = (offer.extra as { name?: unknown } | undefined)?.name;
  if (name === "USD Coin" || name === "USDC") return "USDC";
  return typeof name === "string" ? `${name} (${offer.asset})` : `token ${offer.asset}`;
}

async function readBalance(rpcUrl: string, asset: string, owner: string): Promise<bigint | undefined> {
  try {
    const chain = createPublicClient({ transport: http(rpcUrl, { timeout: 5_000, retryCount: 0 }) });
    return await chain.readContract({
      address: asset as `0x${string}`,
      abi: erc20Abi,
      functionName: "balanceOf",
      args: [owner as `0x${string}`],
    });
  } catch {
    return undefined;
  }
}

/** The `error.message` of an OpenAI-style error body, else the body's first line. */
function errorMessageOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown; code?: unknown } | string };
    const error = parsed.error;
    if (typeof error === "string") return error;
    if (error && typeof error.message === "string")
      return typeof error.code === "string" ? `${error.message} (${error.code})` : error.message;
  } catch {
    // not JSON: the text itself
  }
  const line = body.trim().split("\n")[0] ?? "";
  return line.length > 200 ? `${line.slice(0, 200)}…` : line || "no body";
}
