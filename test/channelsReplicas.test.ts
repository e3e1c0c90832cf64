// Two gateway replicas on one PostgreSQL ledger, paid through one channel: concurrent vouchers on
// one cumulative base are accepted exactly once, whichever replica each lands on.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from "@x402/core/http";
import type { PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme, computeChannelId, signVoucher } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { batchSettlementAbi } from "../src/chain/index.js";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { type Gateway, parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { createPostgresClient, type Ledger, openPostgresLedger } from "../src/ledger/index.js";
import { channelTestConfig } from "./support/channelFixtures.js";
import { testGatewayConfig } from "./support/gatewayHarness.js";
import { type MockBackend, mockModelId, startMockBackend } from "./support/mockBackend.js";

// Tests may read the environment; the library never does.
const connectionString = process.env.TOLLGATE_TEST_DATABASE_URL;

if (!connectionString) {
  test("channels on two replicas", {
    skip: "set TOLLGATE_TEST_DATABASE_URL to run against PostgreSQL",
  }, () => {});
} else {
  const schema = `tollgate_channels_${process.pid}_${Date.now().toString(36)}`;
  let devnet: Devnet;
  let backend: MockBackend;
  const ledgers: Ledger[] = [];
  const gateways: Gateway[] = [];

  before(async () => {
    devnet = await startDevnet({ buyers: 1 });
    backend = await startMockBackend({ tokensPerSecond: 400 });
    const config = parseGatewayConfig(
      channelTestConfig(testGatewayConfig({ devnet, backendUrl: backend.url })),
    );
    for (let i = 0; i < 2; i++) ledgers.push(await openPostgresLedger({ connectionString, schema }));
    const first = await startGateway({ config, ledger: ledgers[0], pollingIntervalMs: 20 });
    // One facilitator (one key, one nonce manager) for both replicas.
    const second = await startGateway({
      config,
      ledger: ledgers[1],
      facilitator: first.facilitator,
      pollingIntervalMs: 20,
    });
    gateways.push(first, second);
  });

  after(async () => {
    for (const gateway of gateways) await gateway.close();
    for (const ledger of ledgers) await ledger.close();
    await backend?.close();
    await devnet?.stop();
    const sql = await createPostgresClient({ connectionString });
    await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => sql.close());
  });

  describe("one channel, two replicas on one PostgreSQL", () => {
    test("50 concurrent vouchers in 5 rounds of 10: exactly one accepted per cumulative step; charges sum exactly", async () => {
      const [a, b] = gateways as [Gateway, Gateway];
      const buyer = await devnet.createBuyer(100_000_000n);
      const publicClient = createPublicClient({ chain: anvil, transport: http(devnet.rpcUrl) });
      const signer = toClientEvmSigner(privateKeyToAccount(buyer.privateKey), publicClient);
      const scheme = new BatchSettlementEvmScheme(signer);
      const payingFetch = wrapFetchWithPayment(
        fetch,
        x402Client.fromConfig({
          schemes: [{ network: devnet.network, client: scheme }],
          spendControls: false,
        }),
      );
      const body = JSON.stringify({
        model: mockModelId,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 16,
      });
      const post = (gateway: Gateway, headers: Record<string, string> = {}) =>
        fetch(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body,
        });
      const opened = await payingFetch(`${a.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(opened.status, 200);
      const required = decodePaymentRequiredHeader((await post(b)).headers.get("payment-required")!);
      const offer = required.accepts.find(
        (accept) => accept.scheme === "batch-settlement",
      ) as PaymentRequirements;
      const config = scheme.buildChannelConfig(offer);
      const channelId = computeChannelId(config, devnet.network);
      const requestMax = BigInt(offer.amount);
      const chargedNow = async () => (await ledgers[0]!.channels.get(channelId))!.chargedAtomic;

      const opening = await chargedNow();
      let accepted = 0;
      for (let round = 0; round < 5; round++) {
        const base = await chargedNow();
        const voucher = await signVoucher(signer, channelId, (base + requestMax).toString(), devnet.network);
        const header = encodePaymentSignatureHeader({
          x402Version: 2,
          resource: required.resource,
          accepted: offer,
          payload: { type: "voucher", channelConfig: config, voucher },
        });
        const answers = await Promise.all(
          Array.from({ length: 10 }, (_, i) => post(i % 2 === 0 ? a : b, { "payment-signature": header })),
        );
        await Promise.all(answers.map((answer) => answer.text()));
        const served = answers.filter((answer) => answer.status === 200).length;
        assert.equal(served, 1, `round ${round}: ${answers.map((answer) => answer.status).join(",")}`);
        assert.ok(answers.every((answer) => answer.status === 200 || answer.status === 402));
        accepted += served;
        const after = await chargedNow();
        assert.ok(after > base && after <= base + requestMax, "one charge on this base, within its maximum");
      }
      assert.equal(accepted, 5);

      const rows = (await ledgers[1]!.payments.recent({ limit: 100 })).filter(
        (row) => row.scheme === "batch-settlement" && (row.status === "settled" || row.status === "zero"),
      );
      assert.equal(rows.length, 6, "the opening request and one per round");
      const rowsAtomic = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
      assert.equal(rowsAtomic, await chargedNow(), "the channel's charged total is the sum of its rows");
      assert.ok(rowsAtomic > opening);

      await a.channels!.settlement.claim({ force: true });
      const [, totalClaimed] = await publicClient.readContract({
        address: a.channels!.billing.settlementAddress,
        abi: batchSettlementAbi,
        functionName: "channels",
        args: [channelId],
      });
      assert.equal(totalClaimed, rowsAtomic, "claimed on chain = charged");
    });
  });
}
