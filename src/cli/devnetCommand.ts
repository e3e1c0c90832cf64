import { z } from "zod";
import { MAX_DEVNET_BUYERS, startDevnet } from "../devnet/index.js";
import { createCliLogger, parseFlags, printLine, waitForShutdownSignal } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";

const flagsSchema = z.object({
  port: z.coerce.number().int().min(0).max(65535).default(8545),
  host: z.string().default("127.0.0.1"),
  buyers: z.coerce
    .number()
    .int(`must be a whole number from 1 to ${MAX_DEVNET_BUYERS}`)
    .min(1, `must be at least 1`)
    .max(MAX_DEVNET_BUYERS, `at most ${MAX_DEVNET_BUYERS} buyers (call createBuyer for more)`)
    .default(3),
  "fresh-buyers": z.coerce
    .number()
    .int(`must be a whole number from 0 to ${MAX_DEVNET_BUYERS}`)
    .min(0, "must be at least 0")
    .max(MAX_DEVNET_BUYERS, `at most ${MAX_DEVNET_BUYERS} fresh buyers`)
    .default(1),
  json: z.boolean().default(false),
});

/** `tollgate devnet`: a real local chain with the canonical x402 contracts. */
export async function devnetCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags("devnet", argv, commandFlags.devnet, flagsSchema);
  const logger = createCliLogger(flags.json ? "warn" : undefined);
  const startedAt = performance.now();
  const devnet = await startDevnet({
    host: flags.host,
    port: flags.port,
    buyers: flags.buyers,
    freshBuyers: flags["fresh-buyers"],
    logger,
  });
  const readyMs = Math.round(performance.now() - startedAt);
  const { accounts, contracts } = devnet;
  const pick = ({ address, privateKey }: { address: string; privateKey: string }) => ({
    address,
    privateKey,
  });
  if (flags.json) {
    printLine(
      JSON.stringify({
        rpcUrl: devnet.rpcUrl,
        chainId: devnet.chainId,
        network: devnet.network,
        contracts: {
          usdc: contracts.usdc,
          permit2: contracts.permit2,
          uptoProxy: contracts.uptoProxy,
          exactProxy: contracts.exactProxy,
          multicall3: contracts.multicall3,
          batchSettlement: contracts.batchSettlement,
          erc3009DepositCollector: contracts.erc3009DepositCollector,
          permit2DepositCollector: contracts.permit2DepositCollector,
        },
        accounts: {
          facilitator: pick(accounts.facilitator),
          payTo: pick(accounts.payTo),
          buyers: accounts.buyers.map((buyer) => ({
            ...pick(buyer),
            permit2Approved: true,
            nativeGas: true,
          })),
          freshBuyers: accounts.freshBuyers.map((buyer) => ({
            ...pick(buyer),
            permit2Approved: false,
            nativeGas: false,
          })),
        },
      }),
    );
  } else {
    printLine(`Tollgate devnet ready in ${readyMs} ms (test funds only — never use these keys elsewhere)`);
    printLine(`  RPC            ${devnet.rpcUrl}   (chain ${devnet.chainId}, ${devnet.network})`);
    printLine(`  USDC (test)    ${contracts.usdc}`);
    printLine(`  Permit2        ${contracts.permit2}`);
    printLine(`  upto proxy     ${contracts.uptoProxy}`);
    printLine(`  exact proxy    ${contracts.exactProxy}`);
    printLine(`  batch settle   ${contracts.batchSettlement}`);
    printLine(
      `    collectors   ${contracts.erc3009DepositCollector} (ERC-3009), ${contracts.permit2DepositCollector} (Permit2)`,
    );
    printLine(`  facilitator    ${accounts.facilitator.address}  key ${accounts.facilitator.privateKey}`);
    printLine(`  payTo          ${accounts.payTo.address}`);
    for (const [i, buyer] of accounts.buyers.entries()) {
      printLine(
        `  buyer ${i}        ${buyer.address}  key ${buyer.privateKey}  (1,000 USDC, Permit2 approved)`,
      );
    }
    for (const [i, buyer] of accounts.freshBuyers.entries()) {
      printLine(
        `  fresh buyer ${i}  ${buyer.address}  key ${buyer.privateKey}  (1,000 USDC only: no Permit2 approval, no gas)`,
      );
    }
    printLine("Press Ctrl-C to stop.");
  }
  await waitForShutdownSignal();
  await devnet.stop();
  return 0;
}
