// Two gateway replicas on one PostgreSQL ledger, each with its own facilitator key and one shared
// receiver-authorizer key, each running its own channel claim and settle rounds.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { type Address, createPublicClient, erc20Abi, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { batchSettlementAbi } from "../src/chain/index.js";
import { type Devnet, devAccount, startDevnet } from "../src/devnet/index.js";
import { type Gateway, parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { createPostgresClient, type Ledger, openPostgresLedger } from "../src/ledger/index.js";
import { BATCH_SETTLEMENT_ADDRESS_FOR_TESTS, channelTestConfig } from "./support/channelFixtures.js";
import { testGatewayConfig } from "./support/gatewayHarness.js";
import { type MockBackend, mockModelId, startMockBackend } from "./support/mockBackend.js";

// Tests may read the environment; the library never does.
const connectionString = process.env.TOLLGATE_TEST_DATABASE_URL;

if (!connectionString) {
  test("channel rounds on two replicas", {
    skip: "set TOLLGATE_TEST_DATABASE_URL to run against PostgreSQL",
  }, () => {});
} else {
  const schema = `tollgate_rounds_${process.pid}_${Date.now().toString(36)}`;
  let devnet: Devnet;
  let backend: MockBackend;
  const ledgers: Ledger[] = [];
  const gateways: Gateway[] = [];
  const body = JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 16,
  });

  before(async () => {
    devnet = await startDevnet({ buyers: 1 });
    backend = await startMockBackend({ tokensPerSecond: 400 });
    const replica = async (facilitatorKey: `0x${string}`) => {
      const input = channelTestConfig(
        testGatewayConfig({ devnet, backendUrl: backend.url, facilitator: { privateKey: facilitatorKey } }),
      );
      const config = parseGatewayConfig({
        ...input,
        channels: { ...input.channels, receiverAuthorizerKey: devnet.accounts.facilitator.privateKey },
      });
      const ledger = await openPostgresLedger({ connectionString, schema });
      ledgers.push(ledger);
      const gateway = await startGateway({ config, ledger, pollingIntervalMs: 20 });
      gateways.push(gateway);
    };
    await replica(devnet.accounts.facilitator.privateKey);
    await replica(devAccount(8).privateKey);
    // A third replica, stopped by a test while the others run on.
    await replica(devAccount(9).privateKey);
  });

  const closed = new Set<Gateway>();
  after(async () => {
    for (const gateway of gateways) if (!closed.has(gateway)) await gateway.close();
    for (const ledger of ledgers) await ledger.close();
    await backend?.close();
    await devnet?.stop();
    const sql = await createPostgresClient({ connectionString });
    await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => sql.close());
  });

  const chain = () => createPublicClient({ chain: anvil, transport: http(devnet.rpcUrl) });
  const sent = async (from: Address) => chain().getTransactionCount({ address: from });

  const readClaimed = async (channelId: `0x${string}`) => {
    const [, claimedAtomic] = await chain().readContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: batchSettlementAbi,
      functionName: "channels",
      args: [channelId],
    });
    return claimedAtomic;
  };

  async function payingBuyer(gateway: Gateway) {
    const buyer = await devnet.createBuyer(100_000_000n);
    const signer = toClientEvmSigner(privateKeyToAccount(buyer.privateKey), chain());
    const payingFetch = wrapFetchWithPayment(
      fetch,
      x402Client.fromConfig({
        schemes: [{ network: devnet.network, client: new BatchSettlementEvmScheme(signer) }],
        spendControls: false,
      }),
    );
    const send = (requestBody = body) =>
      payingFetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: requestBody,
      });
    const pay = async () => {
      const answer = await send();
      await answer.text();
      assert.equal(answer.status, 200);
    };
    return { buyer, pay, send };
  }

  describe("claim and settle rounds on two replicas at once", () => {
    test("two replicas' claim rounds at the same moment send one claim transaction, not two", async (t) => {
      const [a, b] = gateways as [Gateway, Gateway];
      const { pay } = await payingBuyer(a);
      for (let i = 0; i < 3; i++) await pay();
      const facilitators = [devnet.accounts.facilitator.address, devAccount(8).address] as const;
      const before = await Promise.all(facilitators.map(sent));
      const rounds = await Promise.allSettled([
        a.channels!.settlement.claim({ force: true }),
        b.channels!.settlement.claim({ force: true }),
      ]);
      const after = await Promise.all(facilitators.map(sent));
      const transactions = after.reduce((sum, n, i) => sum + n - before[i]!, 0);
      const booked = rounds
        .flatMap((round) => (round.status === "fulfilled" ? round.value : []))
        .reduce((sum, result) => sum + result.claimedAtomic, 0n);
      const channel = (await ledgers[0]!.channels.list())[0]!;
      t.diagnostic(
        `claim rounds at once: ${transactions} transaction(s), charged ${channel.chargedAtomic}, booked ${booked}`,
      );
      assert.equal(channel.totalClaimedAtomic, channel.chargedAtomic, "the channel is claimed in full");
      assert.equal(booked, channel.chargedAtomic, `claims reported by both rounds: ${booked}`);
      assert.equal(transactions, 1, `claim transactions sent: ${transactions}`);
    });

    test("two replicas' settle rounds at the same moment send one sweep to payTo, not two", async (t) => {
      const [a, b] = gateways as [Gateway, Gateway];
      const { pay } = await payingBuyer(b);
      for (let i = 0; i < 2; i++) await pay();
      await b.channels!.settlement.claim({ force: true });
      const facilitators = [devnet.accounts.facilitator.address, devAccount(8).address] as const;
      const before = await Promise.all(facilitators.map(sent));
      const payToBefore = await chain().readContract({
        address: devnet.contracts.usdc,
        abi: erc20Abi,
        functionName: "balanceOf",
        args: [devnet.accounts.payTo.address],
      });
      const rounds = await Promise.all([a.channels!.settlement.settle(), b.channels!.settlement.settle()]);
      const after = await Promise.all(facilitators.map(sent));
      const transactions = after.reduce((sum, n, i) => sum + n - before[i]!, 0);
      const payToGained =
        (await chain().readContract({
          address: devnet.contracts.usdc,
          abi: erc20Abi,
          functionName: "balanceOf",
          args: [devnet.accounts.payTo.address],
        })) - payToBefore;
      const booked = rounds.reduce((sum, round) => sum + (round?.settledAtomic ?? 0n), 0n);
      t.diagnostic(
        `settle rounds at once: ${transactions} transaction(s), payTo gained ${payToGained}, booked ${booked}`,
      );
      assert.ok(payToGained > 0n);
      assert.equal(booked, payToGained, `settled as booked by both rounds: ${booked}`);
      assert.equal(transactions, 1, `sweep transactions sent: ${transactions}`);
    });

    test("a replica stopping while it streams claims that request's charge too before it exits", async () => {
      const c = gateways[2]!;
      const { buyer, pay, send } = await payingBuyer(c);
      await pay();
      let release!: () => void;
      backend.set({
        holdAfterChunks: { chunks: 2, release: new Promise<void>((resolve) => (release = resolve)) },
      });
      try {
        const answer = await send(JSON.stringify({ ...JSON.parse(body), stream: true }));
        assert.equal(answer.status, 200);
        const reader = answer.body!.getReader();
        await reader.read();
        // SIGTERM: the gateway stops while this stream is under way; the other replicas run on.
        closed.add(c);
        await c.close();
        await reader.cancel().catch(() => undefined);
      } finally {
        release();
        backend.set({ holdAfterChunks: undefined });
      }
      const channel = (await ledgers[0]!.channels.list()).find(
        (listed) => listed.payer === buyer.address.toLowerCase(),
      )!;
      const rows = (await ledgers[0]!.payments.recent({ limit: 100 })).filter(
        (row) => row.payer === buyer.address.toLowerCase(),
      );
      assert.deepEqual(
        rows.map((row) => row.status),
        ["settled", "settled"],
        "the stopped stream is charged for what it delivered",
      );
      assert.ok(channel.pending === undefined, "no request holds the channel");
      assert.equal(
        await readClaimed(channel.channelId),
        channel.chargedAtomic,
        `claimed on chain when the replica exited, against ${channel.chargedAtomic} charged`,
      );
    });
  });
}
