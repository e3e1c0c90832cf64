import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { PERMIT2_ADDRESS, uptoPermit2WitnessTypes, x402UptoPermit2ProxyAddress } from "@x402/evm";
import { type Address, getAddress, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

export type SignUptoParameters = {
  privateKey: Hex;
  requirements: PaymentRequirements;
  chainId: number;
  nonce?: bigint;
  validAfter?: bigint;
  deadline?: bigint;
  facilitator?: Address;
};

/**
 * Signs an upto Permit2 authorization by hand, for tests that need fields the official
 * client never produces (a future validAfter, a past deadline).
 */
export async function signUptoPayload({
  privateKey,
  requirements,
  chainId,
  nonce = BigInt(Math.floor(Math.random() * 2 ** 48)),
  validAfter = 0n,
  deadline = BigInt(Math.floor(Date.now() / 1000) + 300),
  facilitator = requirements.extra?.facilitatorAddress as Address,
}: SignUptoParameters): Promise<PaymentPayload> {
  const account = privateKeyToAccount(privateKey);
  const permit2Authorization = {
    from: account.address,
    permitted: { token: getAddress(requirements.asset), amount: requirements.amount },
    spender: x402UptoPermit2ProxyAddress,
    nonce: nonce.toString(),
    deadline: deadline.toString(),
    witness: {
      to: getAddress(requirements.payTo),
      facilitator: getAddress(facilitator),
      validAfter: validAfter.toString(),
    },
  };
  const signature = await account.signTypedData({
    domain: { name: "Permit2", chainId, verifyingContract: PERMIT2_ADDRESS },
    types: uptoPermit2WitnessTypes,
    primaryType: "PermitWitnessTransferFrom",
    message: {
      permitted: { token: permit2Authorization.permitted.token, amount: BigInt(requirements.amount) },
      spender: permit2Authorization.spender,
      nonce,
      deadline,
      witness: {
        to: permit2Authorization.witness.to,
        facilitator: permit2Authorization.witness.facilitator,
        validAfter,
      },
    },
  });
  return {
    x402Version: 2,
    resource: { url: "http://127.0.0.1/test", description: "test", mimeType: "application/json" },
    accepted: requirements,
    payload: { signature, permit2Authorization },
  } as PaymentPayload;
}
