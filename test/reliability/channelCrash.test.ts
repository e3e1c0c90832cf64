// A gateway paid through a payment channel, SIGKILLed between accepting vouchers and claiming them,
// again and again; restarted, it claims exactly what was charged: nothing lost, nothing twice.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { BATCH_SETTLEMENT_ADDRESS, toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { batchSettlementAbi } from "../../src/chain/index.js";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import type { GatewayConfigInput } from "../../src/gateway/index.js";
import { type Ledger, openPostgresLedger } from "../../src/ledger/index.js";
import { testGatewayConfig } from "../support/gatewayHarness.js";
import { type MockBackend, mockModelId, startMockBackend } from "../support/mockBackend.js";
import { type GatewayProcess, startGatewayProcess } from "./support/gatewayProcess.js";
import { databaseUrl, freshSchema, needsPostgres, quick, waitFor } from "./support/reliabilityEnv.js";

const runs = quick ? 4 : 20;

describe(`crash: a channel-paid gateway SIGKILLed between acceptance and claim, ${runs} times`, {
  skip: needsPostgres,
}, () => {
  let devnet: Devnet;
  let backend: MockBackend;
  let ledger: Ledger;
  let dropSchema: () => Promise<void>;
  let dir: string;
  const running: GatewayProcess[] = [];

  before(async () => {
    devnet = await startDevnet({ buyers: 1 });
    backend = await startMockBackend({ responseTokens: 20 });
    let schema: string;
    ({ schema, drop: dropSchema } = await freshSchema("channels"));
    dir = await mkdtemp(join(tmpdir(), "tollgate-channel-crash-"));
    ledger = await openPostgresLedger({ connectionString: databaseUrl!, schema, maxConnections: 2 });
    const config = (claims: boolean): GatewayConfigInput => ({
      ...testGatewayConfig({
        devnet,
        backendUrl: backend.url,
        facilitator: { privateKeyEnv: "TOLLGATE_FACILITATOR_KEY" },
      }),
      ledger: { schema },
      channels: claims
        ? { claimIntervalSeconds: 1, settleIntervalSeconds: 1, minClaimAtomic: 0, withdrawDelaySeconds: 900 }
        : // Nothing is due before the kill: vouchers are only accepted, never claimed.
          {
            claimIntervalSeconds: 300,
            settleIntervalSeconds: 3_600,
            minClaimAtomic: "$1000",
            withdrawDelaySeconds: 900,
          },
    });
    await writeFile(join(dir, "accept.json"), JSON.stringify(config(false)));
    await writeFile(join(dir, "claim.json"), JSON.stringify(config(true)));
  });
  after(async () => {
    for (const gateway of running) await gateway.stop();
    await ledger?.close();
    await dropSchema?.();
    await backend?.close();
    await devnet?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async (name: "accept" | "claim") => {
    const gateway = await startGatewayProcess(join(dir, `${name}.json`), {
      TOLLGATE_FACILITATOR_KEY: devnet.accounts.facilitator.privateKey,
      DATABASE_URL: databaseUrl!,
    });
    running.push(gateway);
    return gateway;
  };

  test("claimed on chain = charged = the receipts' sum; payTo gets it once", async () => {
    const buyer = await devnet.createBuyer(100_000_000n);
    const chain = createPublicClient({ chain: anvil, transport: http(devnet.rpcUrl) });
    const signer = toClientEvmSigner(privateKeyToAccount(buyer.privateKey), chain);
    const payingFetch = wrapFetchWithPayment(
      fetch,
      x402Client.fromConfig({
        schemes: [{ network: devnet.network, client: new BatchSettlementEvmScheme(signer) }],
        spendControls: false,
      }),
    );
    const payTo = devnet.accounts.payTo.address;
    const payToBefore = await devnet.usdcBalance(payTo);
    let receiptsAtomic = 0n;
    let channelId: Hex | undefined;

    for (let run = 0; run < runs; run++) {
      const gateway = await start("accept");
      for (let i = 0; i < 3; i++) {
        const response = await payingFetch(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: mockModelId,
            messages: [{ role: "user", content: `run ${run} #${i}` }],
          }),
        });
        assert.equal(response.status, 200, await response.clone().text());
        await response.text();
        const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!) as {
          extra?: { chargedAmount?: string; channelState?: { channelId?: string } };
        };
        receiptsAtomic += BigInt(receipt.extra?.chargedAmount ?? "0");
        channelId = receipt.extra?.channelState?.channelId as Hex;
      }
      gateway.child.kill("SIGKILL");
      await gateway.exited;
    }
    assert.ok(channelId);
    const claimedOnChain = async () =>
      (
        await chain.readContract({
          address: BATCH_SETTLEMENT_ADDRESS,
          abi: batchSettlementAbi,
          functionName: "channels",
          args: [channelId!],
        })
      )[1];
    assert.equal(await claimedOnChain(), 0n, "nothing was claimed before the kills");
    const charged = (await ledger.channels.get(channelId))!.chargedAtomic;
    assert.equal(charged, receiptsAtomic, "the ledger kept every accepted charge across the kills");

    const claimer = await start("claim");
    assert.ok(
      await waitFor(async () => (await claimedOnChain()) === charged, 30_000),
      "claimed after restart",
    );
    await claimer.stop(); // SIGTERM: settles what was claimed before it exits
    assert.equal(await claimedOnChain(), charged, "claimed = charged, not more");
    assert.equal(await devnet.usdcBalance(payTo), payToBefore + charged, "payTo got the charges once");
    const rows = await ledger.payments.recent({ limit: 1000 });
    assert.equal(
      rows
        .filter((row) => row.scheme === "batch-settlement")
        .reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n),
      charged,
    );
  });
});
