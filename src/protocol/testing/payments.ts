// Test fixtures: real payments signed by the official @x402/evm clients with anvil's first key.
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { privateKeyToAccount } from "viem/accounts";
import type { PaymentPayload, PaymentRequirements } from "../types.js";

export const buyerAccount = privateKeyToAccount(
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
);

export const uptoRequirements: PaymentRequirements = {
  scheme: "upto",
  network: "eip155:84532",
  amount: "50000",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  maxTimeoutSeconds: 300,
  extra: { name: "USDC", version: "2", facilitatorAddress: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" },
};

export const exactRequirements: PaymentRequirements = {
  ...uptoRequirements,
  scheme: "exact",
  extra: { name: "USDC", version: "2" },
};

const resource = {
  url: "http://127.0.0.1/v1/chat/completions",
  description: "chat",
  mimeType: "text/event-stream",
};

async function envelope(
  requirements: PaymentRequirements,
  create: (requirements: PaymentRequirements) => Promise<{ payload: Record<string, unknown> }>,
): Promise<PaymentPayload> {
  const { payload } = await create(requirements);
  return { x402Version: 2, resource, accepted: requirements, payload };
}

const signer = toClientEvmSigner(buyerAccount);

export function signUptoPayment(
  requirements: PaymentRequirements = uptoRequirements,
): Promise<PaymentPayload> {
  return envelope(requirements, (r) => new UptoEvmScheme(signer).createPaymentPayload(2, r));
}

export function signExactEip3009Payment(): Promise<PaymentPayload> {
  return envelope(exactRequirements, (r) => new ExactEvmScheme(signer).createPaymentPayload(2, r));
}

export function signExactPermit2Payment(): Promise<PaymentPayload> {
  const requirements = {
    ...exactRequirements,
    extra: { ...exactRequirements.extra, assetTransferMethod: "permit2" },
  };
  return envelope(requirements, (r) => new ExactEvmScheme(signer).createPaymentPayload(2, r));
}
