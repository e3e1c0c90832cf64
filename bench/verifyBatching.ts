// Verifications per CPU-second with and without JSON-RPC batching, next to the signature-recovery limit,
// at a given number of verifies in flight: `npx tsx bench/verifyBatching.ts [IN_FLIGHT=16] [BLOCKS=6]`.
// Two facilitators (batching on and off) on one devnet take turns in blocks, the order flipped each block,
// and each block counts the CPU of this process, so the ratios survive a noisy machine.
import type { PaymentPayload } from "@x402/core/types";
import { recoverTypedDataAddress } from "viem";
import { startDevnet } from "../src/devnet/index.js";
import { createFacilitator, type TollgateFacilitator } from "../src/facilitator/index.js";
import { paymentRequiredFor, typedDataOf, uptoRequirements } from "./facilitatorBench.js";
import { createBenchBuyer } from "./payingClient.js";
import { cpuSecondsOf, runConcurrently } from "./stats.js";

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
  const requirements = uptoRequirements(devnet, variants[0]!.facilitator.address);
  const required = paymentRequiredFor(requirements);
  const buyers = devnet.accounts.buyers.map((buyer) => createBenchBuyer(buyer.privateKey, devnet.network));
  const payloads: PaymentPayload[] = [];
  for (let i = 0; i < 200; i++)
    payloads.push(await buyers[i % buyers.length]!.client.createPaymentPayload(required));
  const sample = typedDataOf(payloads[0]!, devnet.chainId);
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
