import {
  authorizationTypes,
  PERMIT2_ADDRESS,
  uptoPermit2WitnessTypes,
  x402UptoPermit2ProxyAddress,
} from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { type Address, getAddress, type Hex, toHex } from "viem";
import { type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts";
import {
  decodePaymentRequiredHeader,
  encodePaymentSignatureHeader,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequirements,
} from "../../src/protocol/index.js";

export type HostilePaymentParameters = {
  /** The 402: decoded, or the raw base64 `PAYMENT-REQUIRED` header value. */
  paymentRequired: PaymentRequired | string;
  privateKey: Hex;
  /** The offer to sign; default upto when offered, else exact. */
  scheme?: "upto" | "exact" | undefined;
  /** Seconds from now to upto's Permit2 `deadline` / exact's `validBefore`; default the offer's `maxTimeoutSeconds`. */
  deadlineSeconds?: number | undefined;
  /** The maximum (upto) or value (exact) to sign instead of the offer's amount. */
  amountAtomic?: bigint | undefined;
  /** Seconds from now to `validAfter` (negative: in the past); default `validAfter` 0, as the official client signs. */
  validAfterSeconds?: number | undefined;
  /** Fields to claim in the payload's `accepted`, over the offer with the signed amount. */
  accepted?: Partial<PaymentRequirements> | undefined;
};

/**
 * Signs a payment for a 402 with real keys, bending the terms a well-behaved buyer would keep:
 * deadline, amount, validAfter. The payload has exactly the official client's shape. The
 * official `@x402/evm` schemes sign it when they can (they read the deadline from
 * `maxTimeoutSeconds` and the amount from `amount`); only a `validAfter` other than 0, which
 * they never produce, is signed here with the same EIP-712 typed data.
 * @example
 * const header = await signHostilePayment({ paymentRequired, privateKey, amountAtomic: 20n * max });
 * await fetch(url, { method: "POST", headers: { "payment-signature": header }, body });
 */
export async function signHostilePayment(parameters: HostilePaymentParameters): Promise<string> {
  return encodePaymentSignatureHeader(await hostilePaymentPayload(parameters));
}

/** The decoded payload `signHostilePayment` encodes, for tests that inspect or alter it. */
export async function hostilePaymentPayload({
  paymentRequired,
  privateKey,
  scheme,
  deadlineSeconds,
  amountAtomic,
  validAfterSeconds,
  accepted,
}: HostilePaymentParameters): Promise<PaymentPayload> {
  const required = typeof paymentRequired === "string" ? decodeRequired(paymentRequired) : paymentRequired;
  const offer = pickOffer(required, scheme);
  const signed: PaymentRequirements = {
    ...offer,
    amount: (amountAtomic ?? BigInt(offer.amount)).toString(),
    maxTimeoutSeconds: wholeSeconds(deadlineSeconds ?? offer.maxTimeoutSeconds, "deadlineSeconds"),
  };
  const account = privateKeyToAccount(privateKey);
  const payload =
    validAfterSeconds === undefined
      ? await officialPayload(account, signed)
      : await handSignedPayload(account, signed, wholeSeconds(validAfterSeconds, "validAfterSeconds"));
  return {
    x402Version: 2,
    payload,
    ...(required.extensions ? { extensions: required.extensions } : {}),
    resource: required.resource,
    // As the official client does, claim what was signed: the offer, at the signed amount.
    accepted: { ...offer, amount: signed.amount, ...accepted },
  } as PaymentPayload;
}

function decodeRequired(header: string): PaymentRequired {
  const decoded = decodePaymentRequiredHeader(header);
  if (!decoded.ok) throw new Error(`PAYMENT-REQUIRED does not decode: ${decoded.message}`);
  return decoded.paymentRequired;
}

function pickOffer(required: PaymentRequired, scheme: "upto" | "exact" | undefined): PaymentRequirements {
  const offer = scheme
    ? required.accepts.find((candidate) => candidate.scheme === scheme)
    : (required.accepts.find((candidate) => candidate.scheme === "upto") ??
      required.accepts.find((candidate) => candidate.scheme === "exact"));
  if (!offer) throw new Error(`the 402 offers no ${scheme ?? "upto or exact"} payment`);
  return offer;
}

function wholeSeconds(value: number, name: string): number {
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be a whole number of seconds`);
  return value;
}

async function officialPayload(account: PrivateKeyAccount, requirements: PaymentRequirements) {
  const client = requirements.scheme === "upto" ? new UptoEvmScheme(account) : new ExactEvmScheme(account);
  const result = await client.createPaymentPayload(2, requirements);
  return result.payload;
}

/** The official clients' payloads, with `validAfter` set: same fields, strings and typed data. */
async function handSignedPayload(
  account: PrivateKeyAccount,
  requirements: PaymentRequirements,
  validAfterSeconds: number,
) {
  const now = Math.floor(Date.now() / 1000);
  const validAfter = BigInt(now + validAfterSeconds);
  const deadline = BigInt(now + requirements.maxTimeoutSeconds);
  const chainId = Number(requirements.network.split(":")[1]);
  const amount = BigInt(requirements.amount);
  const random32 = () => toHex(crypto.getRandomValues(new Uint8Array(32)));

  if (requirements.scheme === "upto") {
    const facilitator = requirements.extra?.facilitatorAddress as Address | undefined;
    if (!facilitator) throw new Error("the upto offer names no facilitatorAddress");
    const nonce = BigInt(random32());
    const message = {
      permitted: { token: getAddress(requirements.asset), amount },
      spender: x402UptoPermit2ProxyAddress,
      nonce,
      deadline,
      witness: { to: getAddress(requirements.payTo), facilitator: getAddress(facilitator), validAfter },
    };
    const signature = await account.signTypedData({
      domain: { name: "Permit2", chainId, verifyingContract: PERMIT2_ADDRESS },
      types: uptoPermit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message,
    });
    return {
      signature,
      permit2Authorization: {
        from: account.address,
        permitted: { token: message.permitted.token, amount: requirements.amount },
        spender: message.spender,
        nonce: nonce.toString(),
        deadline: deadline.toString(),
        witness: { ...message.witness, validAfter: validAfter.toString() },
      },
    };
  }

  if (requirements.extra?.assetTransferMethod === "permit2") {
    throw new Error("validAfterSeconds is implemented for exact with EIP-3009 only");
  }
  const { name, version } = (requirements.extra ?? {}) as { name?: string; version?: string };
  if (!name || !version)
    throw new Error("the exact offer names no EIP-712 domain (extra.name, extra.version)");
  const authorization = {
    from: account.address,
    to: getAddress(requirements.payTo),
    value: requirements.amount,
    validAfter: validAfter.toString(),
    validBefore: deadline.toString(),
    nonce: random32(),
  };
  const signature = await account.signTypedData({
    domain: { name, version, chainId, verifyingContract: getAddress(requirements.asset) },
    types: authorizationTypes,
    primaryType: "TransferWithAuthorization",
    message: { ...authorization, value: amount, validAfter, validBefore: deadline },
  });
  return { authorization, signature };
}
