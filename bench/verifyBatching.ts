// Verifications per CPU-second with and without JSON-RPC batching, next to the signature-recovery limit,
// at a given number of verifies in flight: `npx tsx bench/verifyBatching.ts [IN_FLIGHT=16] [BLOCKS=6]`.
// Two facilitators (batching on and off) on one devnet take turns in blocks, the order flipped each block,
// and each block counts the CPU of this process, so the ratios survive a noisy machine.
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from "@x402/core/types";
import { PERMIT2_ADDRESS, uptoPermit2WitnessTypes } from "@x402/evm";
import { getAddress, type Hex, recoverTypedDataAddress } from "viem";
import { startDevnet } from "../src/devnet/index.js";
import { createFacilitator, type TollgateFacilitator } from "../src/facilitator/index.js";
import { createBenchBuyer } from "./payingClient.js";
import { runConcurrently } from "./stats.js";

const inFlight = Number(process.argv[2] ?? 16);
const blocks = Number(process.argv[3] ?? 6);
const devnet = await startDevnet({ buyers: 4 });
try {
  const facilitatorWith = (rpcBatch: boolean) =>
    createFacilitator({
      rpcUrl: devnet.rpcUrl,
      privateKey: devnet.accounts.facilitator.privateKey,
      network: devnet.network,
      rpcBatch,
    });
  const variants: { name: string; facilitator: TollgateFacilitator; count: number; cpuSeconds: number }[] = [
    { name: "batched", facilitator: facilitatorWith(true), count: 0, cpuSeconds: 0 },
    { name: "unbatched", facilitator: facilitatorWith(false), count: 0, cpuSeconds: 0 },
  ];
  const requirements = {
    scheme: "upto",
    network: devnet.network,
    asset: devnet.contracts.usdc,
    amount: "10000",
    payTo: devnet.accounts.payTo.address,
    maxTimeoutSeconds: 300,
    extra: { name: "USD Coin", version: "2", facilitatorAddress: variants[0]!.facilitator.address },
  } as PaymentRequirements;
  const required = {
    x402Version: 2,
    resource: {
      url: "http://127.0.0.1/v1/chat/completions",
      description: "bench",
      mimeType: "application/json",
    },
    accepts: [requirements],
  } as PaymentRequired;
  const buyers = devnet.accounts.buyers.map((buyer) => createBenchBuyer(buyer.privateKey, devnet.network));
  const payloads: PaymentPayload[] = [];
  for (let i = 0; i < 200; i++)
    payloads.push(await buyers[i % buyers.length]!.client.createPaymentPayload(required));

  const { permit2Authorization: auth, signature } = payloads[0]!.payload as {
    signature: Hex;
    permit2Authorization: {
      permitted: { token: string; amount: string };
      spender: string;
      nonce: string;
      deadline: string;
      witness: { to: string; facilitator: string; validAfter: string };
    };
  };
  const sample = {
    domain: { name: "Permit2", chainId: devnet.chainId, verifyingContract: PERMIT2_ADDRESS },
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
  const cpuSecondsOf = async (work: () => Promise<unknown>) => {
    const before = process.cpuUsage();
    await work();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / 1e6;
  };
  for (const variant of variants) await variant.facilitator.verify(payloads[0]!, requirements); // warm caches

  let recoveries = 0;
  let recoveryCpuSeconds = 0;
  for (let block = 0; block < blocks; block++) {
    recoveryCpuSeconds += await cpuSecondsOf(async () => {
      for (let i = 0; i < 150; i++) await recoverTypedDataAddress(sample);
    });
    recoveries += 150;
    for (const variant of block % 2 === 0 ? variants : [...variants].reverse()) {
      let invalid = 0;
      variant.cpuSeconds += await cpuSecondsOf(() =>
        runConcurrently(payloads.length, inFlight, async (index) => {
          if (!(await variant.facilitator.verify(payloads[index]!, requirements)).isValid) invalid++;
        }),
      );
      variant.count += payloads.length;
      if (invalid > 0) throw new Error(`${variant.name}: ${invalid} valid payloads failed to verify`);
    }
  }
  const recoveryRate = recoveries / recoveryCpuSeconds;
  console.log(
    `${inFlight} verifies in flight; signature recoveries ${recoveryRate.toFixed(0)} per CPU-second`,
  );
  for (const variant of variants) {
    const rate = variant.count / variant.cpuSeconds;
    console.log(
      `  ${variant.name.padEnd(9)} ${rate.toFixed(0)} verifications per CPU-second (${(rate / recoveryRate).toFixed(2)}× recovery)`,
    );
  }
} finally {
  await devnet.stop();
}
