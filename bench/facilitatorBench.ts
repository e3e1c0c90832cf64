// Facilitator micro-benchmarks, in this process against the shared devnet: the signature-recovery limit
// of one core, verify latency and verifications per core, settle latency, settles/s through the nonce
// manager, and gas per upto settle from the receipts.
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from "@x402/core/types";
import { PERMIT2_ADDRESS, uptoPermit2WitnessTypes } from "@x402/evm";
import { getAddress, type Hex, recoverTypedDataAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { Devnet, KeyedAccount } from "../src/devnet/index.js";
import { createFacilitator, type TollgateFacilitator } from "../src/facilitator/index.js";
import { type BenchBuyer, createBenchBuyer } from "./payingClient.js";
import type { SampleCounts } from "./settings.js";
import { cpuSecondsOf, opsPerSecond, runConcurrently, type Summary, summarize } from "./stats.js";

export type FacilitatorFigures = {
  /** `recoverTypedDataAddress` of an upto witness, per CPU-second (one core's limit). */
  recoveryPerS: number;
  /** Signing one upto payment with the official client (buyer side), ms. */
  signPayment: Summary;
  /** Signing one settle transaction (the facilitator's local CPU in a settle), ms. */
  signTransactionMs: number;
  /** One verify at a time, ms. */
  verify: Summary;
  /** Verifications per second with many in flight (wall clock; the chain works on another core). */
  verifyPerS: number;
  /** Verifications per second per core of this process's CPU (operations / CPU seconds used). */
  verifyPerCoreS: number;
  /** One settle at a time (transaction, receipt, transfer check), ms. */
  settle: Summary;
  /** Settles per second with many concurrent settles through one key's nonce manager. */
  settlePerS: number;
  concurrentSettles: number;
  settleFailures: number;
  gasPerUptoSettle: Summary;
};

export type FacilitatorBenchParameters = {
  devnet: Devnet;
  /** A funded key used only here, so the serving stack's nonce manager is never disturbed. */
  facilitatorAccount: KeyedAccount;
  buyers: readonly KeyedAccount[];
  counts: SampleCounts;
  pollingIntervalMs: number;
  log: (line: string) => void;
};

/** An upto requirement for a bench facilitator, 0.01 USDC at most. */
export function uptoRequirements(devnet: Devnet, facilitatorAddress: string): PaymentRequirements {
  return {
    scheme: "upto",
    network: devnet.network,
    asset: devnet.contracts.usdc,
    amount: "10000",
    payTo: devnet.accounts.payTo.address,
    maxTimeoutSeconds: 300,
    extra: { name: "USD Coin", version: "2", facilitatorAddress, assetTransferMethod: "permit2" },
  } as PaymentRequirements;
}

/** The 402 a bench buyer signs against. */
export function paymentRequiredFor(requirements: PaymentRequirements): PaymentRequired {
  return {
    x402Version: 2,
    resource: {
      url: "http://127.0.0.1/v1/chat/completions",
      description: "bench",
      mimeType: "application/json",
    },
    accepts: [requirements],
  } as PaymentRequired;
}

async function signPayloads(
  buyers: readonly BenchBuyer[],
  requirements: PaymentRequirements,
  count: number,
): Promise<{ payloads: PaymentPayload[]; durations: number[] }> {
  const payloads: PaymentPayload[] = [];
  const durations: number[] = [];
  const required = paymentRequiredFor(requirements);
  for (let i = 0; i < count; i++) {
    const startedAt = performance.now();
    payloads.push(await buyers[i % buyers.length]!.client.createPaymentPayload(required));
    durations.push(performance.now() - startedAt);
  }
  return { payloads, durations };
}

/** The typed data and signature of an upto payload, as the facilitator recovers it. */
export function typedDataOf(payload: PaymentPayload, chainId: number) {
  const { permit2Authorization: auth, signature } = payload.payload as {
    signature: Hex;
    permit2Authorization: {
      permitted: { token: string; amount: string };
      spender: string;
      nonce: string;
      deadline: string;
      witness: { to: string; facilitator: string; validAfter: string };
    };
  };
  return {
    domain: { name: "Permit2", chainId, verifyingContract: PERMIT2_ADDRESS },
    types: uptoPermit2WitnessTypes,
    primaryType: "PermitWitnessTransferFrom" as const,
    message: {
      permitted: { token: getAddress(auth.permitted.token), amount: BigInt(auth.permitted.amount) },
      spender: getAddress(auth.spender),
      nonce: BigInt(auth.nonce),
      deadline: BigInt(auth.deadline),
      witness: {
        to: getAddress(auth.witness.to),
        facilitator: getAddress(auth.witness.facilitator),
        validAfter: BigInt(auth.witness.validAfter),
      },
    },
    signature,
  };
}

async function timeEach<T>(
  items: readonly T[],
  fn: (item: T) => Promise<boolean>,
): Promise<{ durations: number[]; failures: number }> {
  const durations: number[] = [];
  let failures = 0;
  for (const item of items) {
    const startedAt = performance.now();
    const ok = await fn(item);
    durations.push(performance.now() - startedAt);
    if (!ok) failures++;
  }
  return { durations, failures };
}

/** Runs the facilitator micro-benchmarks; see {@link FacilitatorFigures}. */
export async function runFacilitatorBench({
  devnet,
  facilitatorAccount,
  buyers: buyerAccounts,
  counts,
  pollingIntervalMs,
  log,
}: FacilitatorBenchParameters): Promise<FacilitatorFigures> {
  const facilitator: TollgateFacilitator = createFacilitator({
    rpcUrl: devnet.rpcUrl,
    privateKey: facilitatorAccount.privateKey,
    network: devnet.network,
    pollingIntervalMs,
  });
  const requirements = uptoRequirements(devnet, facilitator.address);
  const buyers = buyerAccounts.map((buyer) => createBenchBuyer(buyer.privateKey, devnet.network));

  log("facilitator: signing payloads");
  const verifyCount = counts.verifySamples;
  const settleCount = counts.settleSamples + counts.concurrentSettles;
  const signed = await signPayloads(buyers, requirements, verifyCount + settleCount);
  const signPayment = summarize(signed.durations);
  const forVerify = signed.payloads.slice(0, verifyCount);
  const forSettle = signed.payloads.slice(verifyCount, verifyCount + counts.settleSamples);
  const forConcurrentSettle = signed.payloads.slice(verifyCount + counts.settleSamples);

  log("facilitator: signature recovery limit");
  const sample = typedDataOf(forVerify[0]!, devnet.chainId);
  const expected = getAddress(
    (forVerify[0]!.payload as { permit2Authorization: { from: string } }).permit2Authorization.from,
  );
  const recovered = await recoverTypedDataAddress(sample);
  if (recovered !== expected) throw new Error("bench: recovered the wrong signer");

  const txAccount = privateKeyToAccount(facilitatorAccount.privateKey);
  const signTx = await opsPerSecond(
    () =>
      txAccount.signTransaction({
        chainId: devnet.chainId,
        type: "eip1559",
        to: devnet.contracts.usdc,
        data: "0x12345678",
        nonce: 1,
        gas: 200_000n,
        maxFeePerGas: 2_000_000_000n,
        maxPriorityFeePerGas: 1_000_000n,
      }),
    { durationMs: counts.microDurationMs / 2 },
  );

  log("facilitator: verify, one at a time");
  await facilitator.verify(forVerify[0]!, requirements); // warm caches (asset code check, clients)
  const sequential = await timeEach(forVerify, async (payload) => {
    const result = await facilitator.verify(payload, requirements);
    return result.isValid;
  });
  if (sequential.failures > 0)
    throw new Error(`bench: ${sequential.failures} valid payloads failed to verify`);

  // Recovery and verify take turns (three blocks each) and both count operations per CPU-second of
  // this process, so a noisy neighbour slows both alike and the ratio stays meaningful.
  log("facilitator: signature recovery and verify (16 in flight), interleaved");
  let recoveries = 0;
  let recoveryCpuSeconds = 0;
  let verifications = 0;
  let verifyCpuSeconds = 0;
  let verifyWallMs = 0;
  let concurrentFailures = 0;
  for (let block = 0; block < 3; block++) {
    recoveryCpuSeconds += await cpuSecondsOf(async () => {
      const { runs } = await opsPerSecond(() => recoverTypedDataAddress(sample), {
        durationMs: counts.microDurationMs / 3,
      });
      recoveries += runs;
    });
    verifyCpuSeconds += await cpuSecondsOf(async () => {
      verifyWallMs += await runConcurrently(forVerify.length, 16, async (index) => {
        const result = await facilitator.verify(forVerify[index]!, requirements);
        if (!result.isValid) concurrentFailures++;
      });
      verifications += forVerify.length;
    });
  }
  if (concurrentFailures > 0) throw new Error(`bench: ${concurrentFailures} concurrent verifies failed`);

  log("facilitator: settle, one at a time");
  const settleRequirements = { ...requirements, amount: "3333" };
  const hashes: Hex[] = [];
  const settleOne = async (payload: PaymentPayload) => {
    const result = await facilitator.settle(payload, settleRequirements);
    if (result.success && result.transaction) hashes.push(result.transaction as Hex);
    return result.success;
  };
  const settled = await timeEach(forSettle, settleOne);

  log(`facilitator: ${forConcurrentSettle.length} concurrent settles`);
  let concurrentSettleFailures = 0;
  const settleWallMs = await runConcurrently(
    forConcurrentSettle.length,
    forConcurrentSettle.length,
    async (i) => {
      if (!(await settleOne(forConcurrentSettle[i]!))) concurrentSettleFailures++;
    },
  );

  const receipts = await Promise.all(
    hashes.map((hash) => facilitator.signer.publicClient.getTransactionReceipt({ hash })),
  );
  return {
    recoveryPerS: recoveries / recoveryCpuSeconds,
    signPayment,
    signTransactionMs: 1000 / signTx.opsPerSecond,
    verify: summarize(sequential.durations),
    verifyPerS: (verifications * 1000) / verifyWallMs,
    verifyPerCoreS: verifications / verifyCpuSeconds,
    settle: summarize(settled.durations),
    settlePerS: ((forConcurrentSettle.length - concurrentSettleFailures) * 1000) / settleWallMs,
    concurrentSettles: forConcurrentSettle.length,
    settleFailures: settled.failures + concurrentSettleFailures,
    gasPerUptoSettle: summarize(receipts.map((receipt) => Number(receipt.gasUsed))),
  };
}
