import { x402Client } from "@x402/core/client";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createWalletClient, erc20Abi, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import type { Logger } from "../../src/errors/index.js";
import {
  type BillingEventListener,
  type Gateway,
  type GatewayConfigInput,
  parseGatewayConfig,
  type StartGatewayParameters,
  startGateway,
} from "../../src/gateway/index.js";
import { createLedger, createPgliteClient, type Ledger, type SqlClient } from "../../src/ledger/index.js";
import { type MockBackend, mockModelId, startMockBackend } from "./mockBackend.js";

/** Prices of the test model, in atomic units per 1M tokens. */
export const testPrices = {
  inputPerMTokAtomic: 3_000_000n,
  outputPerMTokAtomic: 15_000_000n,
  fixedFeeAtomic: 0n,
};

/** The charge Tollgate must take for a usage: ceil(prompt × in + completion × out) / 1M + fee. */
export function expectedCharge(promptTokens: number, completionTokens: number): bigint {
  const product =
    BigInt(promptTokens) * testPrices.inputPerMTokAtomic +
    BigInt(completionTokens) * testPrices.outputPerMTokAtomic;
  return (product + 999_999n) / 1_000_000n + testPrices.fixedFeeAtomic;
}

export type GatewayHarness = {
  devnet: Devnet;
  backend: MockBackend;
  gateway: Gateway;
  ledger: Ledger;
  close(): Promise<void>;
};

/**
 * The tests' gateway config: the devnet's test USDC to its payTo, an in-process facilitator with the
 * devnet's facilitator key (unless `facilitator` says otherwise), and one mock model at the test prices.
 */
export function testGatewayConfig({
  devnet,
  backendUrl,
  rpcUrl = devnet.rpcUrl,
  facilitator = { privateKey: devnet.accounts.facilitator.privateKey },
}: {
  devnet: Devnet;
  backendUrl: string;
  rpcUrl?: string | undefined;
  facilitator?: GatewayConfigInput["facilitator"];
}): GatewayConfigInput & { models: GatewayConfigInput["models"] } {
  return {
    network: devnet.network,
    rpcUrl,
    asset: devnet.contracts.usdc,
    assetDomain: { name: "USD Coin", version: "2" },
    payTo: devnet.accounts.payTo.address,
    facilitator,
    server: { host: "127.0.0.1", port: 0 },
    models: [
      {
        id: mockModelId,
        backend: { baseUrl: backendUrl },
        inputPrice: testPrices.inputPerMTokAtomic.toString(),
        outputPrice: testPrices.outputPerMTokAtomic.toString(),
        maxOutputTokens: 256,
      },
    ],
  };
}

/** Devnet + mock backend + in-process facilitator + in-memory ledger + gateway, all on loopback. */
export async function startGatewayHarness(
  options: {
    devnet?: Devnet;
    rpcUrl?: string;
    model?: Partial<GatewayConfigInput["models"][number]>;
    /** More models on the same mock backend, given its base URL. */
    extraModels?: (backendUrl: string) => GatewayConfigInput["models"];
    /** Edits the config before it is parsed (e.g. `timeouts`). */
    configure?: (input: GatewayConfigInput) => GatewayConfigInput;
    /** Wraps the in-memory ledger's SQL client, e.g. to watch the statements a request makes. */
    wrapSql?: (sql: SqlClient) => SqlClient;
    /** The gateway's logger (default silent). */
    logger?: Logger;
    /** Receives the gateway's billing events. */
    onBillingEvent?: BillingEventListener;
    /** Routes of the test's own on the gateway (e.g. paid MCP tools). */
    routes?: StartGatewayParameters["routes"];
  } = {},
): Promise<GatewayHarness> {
  const devnet = options.devnet ?? (await startDevnet({ buyers: 3 }));
  const backend = await startMockBackend();
  const sql = await createPgliteClient();
  const ledger = await createLedger(options.wrapSql ? options.wrapSql(sql) : sql);
  const input = testGatewayConfig({ devnet, backendUrl: backend.url, rpcUrl: options.rpcUrl });
  const [testModel] = input.models;
  const merged: GatewayConfigInput = {
    ...input,
    models: [{ ...testModel!, ...options.model }, ...(options.extraModels?.(backend.url) ?? [])],
  };
  const config = parseGatewayConfig(options.configure ? options.configure(merged) : merged);
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway({
      config,
      ledger,
      pollingIntervalMs: 20,
      logger: options.logger,
      onBillingEvent: options.onBillingEvent,
      routes: options.routes,
    });
  } catch (error) {
    await backend.close();
    await ledger.close();
    if (!options.devnet) await devnet.stop();
    throw error;
  }
  return {
    devnet,
    backend,
    gateway,
    ledger,
    async close() {
      await gateway.close();
      await backend.close();
      await ledger.close();
      if (!options.devnet) await devnet.stop();
    },
  };
}

/**
 * A second gateway on the harness's devnet, backend and ledger, with the test config as `configure`
 * edits it: a gateway started again on the ledger, or a replica beside the harness's. The caller closes it.
 */
export function startGatewayOnLedger(
  h: GatewayHarness,
  configure: (input: GatewayConfigInput) => GatewayConfigInput,
): Promise<Gateway> {
  return startGateway({
    config: parseGatewayConfig(configure(testGatewayConfig({ devnet: h.devnet, backendUrl: h.backend.url }))),
    ledger: h.ledger,
    pollingIntervalMs: 20,
  });
}

/** A library billing's terms (`createBilling`) on the devnet: its test USDC to its payTo, through `facilitator`. */
export const billingTermsOf = (devnet: Devnet, facilitator: { address: `0x${string}` }) => ({
  network: devnet.network,
  asset: devnet.contracts.usdc,
  assetDomain: { name: "USD Coin", version: "2" },
  payTo: devnet.accounts.payTo.address,
  maxTimeoutSeconds: 300,
  facilitatorAddress: facilitator.address,
});

/** The official x402 client with `@x402/evm`'s upto and exact schemes, for the devnet's test asset. */
export function officialBuyer(privateKey: Hex, network: `eip155:${number}`): x402Client {
  const signer = privateKeyToAccount(privateKey);
  return x402Client.fromConfig({
    schemes: [
      { network, client: new UptoEvmScheme(signer) },
      { network, client: new ExactEvmScheme(signer) },
    ],
    spendControls: false,
  });
}

/** `fetch` wrapped by the official `@x402/fetch` with the official client. */
export function officialPayingFetch(privateKey: Hex, network: `eip155:${number}`): typeof fetch {
  return wrapFetchWithPayment(fetch, officialBuyer(privateKey, network)) as typeof fetch;
}

/** A payer walking away: moves `atomic` of its test USDC to the deployer, and waits until it is mined. */
export async function moveUsdcAway(devnet: Devnet, privateKey: Hex, atomic: bigint): Promise<void> {
  const wallet = createWalletClient({
    account: privateKeyToAccount(privateKey),
    transport: http(devnet.rpcUrl),
  });
  await devnet.waitMined(
    await wallet.writeContract({
      chain: null,
      address: devnet.contracts.usdc,
      abi: erc20Abi,
      functionName: "transfer",
      args: [devnet.accounts.deployer.address, atomic],
    }),
  );
}
