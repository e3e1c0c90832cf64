import type { ChannelRecord } from "../ChannelLedger.js";
import type { ClaimPaymentInput } from "../PaymentLedger.js";

/** Channel `n`'s id: `n` as 32 bytes of hex. */
export const testChannelId = (n: number) => `0x${n.toString(16).padStart(64, "0")}` as const;

/** What a test changes of a stored channel: any field, and any of its terms (`config`). */
export type TestChannelOverrides = Partial<Omit<ChannelRecord, "config">> & {
  config?: Partial<ChannelRecord["config"]>;
};

/**
 * A stored channel of the ledger's tests: 1,000 deposited, nothing charged, `overrides` on top. Its
 * terms follow its payer, receiver and token, unless `overrides.config` says otherwise.
 */
export function testChannel(n: number, overrides: TestChannelOverrides = {}): ChannelRecord {
  const { config, ...fields } = overrides;
  const record = {
    channelId: testChannelId(n),
    network: "eip155:31337",
    payer: "0x00000000000000000000000000000000000000aa",
    receiver: "0x00000000000000000000000000000000000000bb",
    token: "0x00000000000000000000000000000000000000cc",
    chargedAtomic: 0n,
    signedMaxAtomic: 0n,
    signature: "0x",
    balanceAtomic: 1_000n,
    totalClaimedAtomic: 0n,
    withdrawRequestedAt: 0,
    refundNonce: 0n,
    onchainSyncedAt: 1,
    settledAtomic: 0n,
    depositedAtomic: 1_000n,
    refundedAtomic: 0n,
    lastRequestAt: 0,
    pending: undefined,
    ...fields,
  } satisfies Omit<ChannelRecord, "config">;
  return {
    ...record,
    config: {
      payer: record.payer as `0x${string}`,
      payerAuthorizer: "0x00000000000000000000000000000000000000ad",
      receiver: record.receiver as `0x${string}`,
      receiverAuthorizer: "0x00000000000000000000000000000000000000be",
      token: record.token as `0x${string}`,
      withdrawDelay: 900,
      salt: testChannelId(1),
      ...config,
    },
  };
}

/** The channel the journal's tests charge. */
export const journalTestChannel = () => testChannel(0x71);

/** The next JSON voucher request's charge on `current`: `chargeAtomic` of a 100 maximum, row id `idBase` + the charged total. */
export function journalTestCharge(current: ChannelRecord, chargeAtomic = 37n, idBase = 1_000) {
  const paymentId = idBase + Number(current.chargedAtomic);
  const claim: ClaimPaymentInput = {
    network: current.network,
    payer: current.payer,
    nonce: `${paymentId}`,
    scheme: "batch-settlement",
    model: "m",
    route: "chat",
    asset: current.token,
    payTo: current.receiver,
    maxAtomic: 100n,
    paymentPayload: { voucher: { maxClaimableAmount: `${current.chargedAtomic + 100n}` } },
    paymentRequirements: { amount: "100" },
    requestId: `req-${paymentId}`,
  };
  const next: ChannelRecord = {
    ...current,
    chargedAtomic: current.chargedAtomic + chargeAtomic,
    signedMaxAtomic: current.chargedAtomic + 100n,
    signature: `0x${"ab".repeat(65)}`,
    lastRequestAt: 1_700_000_000_000 + paymentId,
    pending: undefined,
  };
  const outcome = {
    usage: { promptTokens: 3, completionTokens: 4, units: { input_tokens: 3, output_tokens: 4 } },
    chargeAtomic,
  };
  return { next, paymentId, outcome, claim };
}
