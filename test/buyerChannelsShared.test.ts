// Two buyer processes' paying fetches on one PostgreSQL spend store, paying Tollgate's gateway by
// channel at once: a channel of the pool is taken by lease, so the seller never finds two of their
// requests on one channel (no channel_busy), and the daily cap holds across both.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createPayingFetch, createSpendStore, type SpendStore } from "../src/buyer/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { createPostgresClient } from "../src/ledger/index.js";
import { eventLog } from "./support/buyerFixtures.js";
import { channelTestConfig } from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

// Tests may read the environment; the library never does.
const connectionString = process.env.TOLLGATE_TEST_DATABASE_URL;

if (!connectionString) {
  test("two buyers on one PostgreSQL spend store", {
    skip: "set TOLLGATE_TEST_DATABASE_URL to run against PostgreSQL",
  }, () => {});
} else {
  const schema = `tollgate_spend_${process.pid}_${Date.now().toString(36)}`;
  let h: GatewayHarness;
  const stores: SpendStore[] = [];

  before(async () => {
    h = await startGatewayHarness({ configure: channelTestConfig });
    const admin = await createPostgresClient({ connectionString });
    await admin.exec(`CREATE SCHEMA "${schema}"`).finally(() => admin.close());
    // Two processes' stores: separate connection pools on one schema.
    for (let i = 0; i < 2; i += 1)
      stores.push(await createSpendStore({ sql: await createPostgresClient({ connectionString, schema }) }));
  });

  after(async () => {
    for (const store of stores) await store.close();
    await h?.close();
    const admin = await createPostgresClient({ connectionString });
    await admin.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => admin.close());
  });

  describe("two buyers on one PostgreSQL spend store", () => {
    test("concurrent requests from both take channels by lease: no channel_busy, every charge counted once, the daily cap holds", async () => {
      const buyer = await h.devnet.createBuyer(100_000_000n);
      const log = eventLog();
      const buyers = stores.map((store) =>
        createPayingFetch({
          privateKey: buyer.privateKey,
          rpcUrl: h.devnet.rpcUrl,
          store,
          onEvent: log.onEvent,
          channelPoolSize: 2,
        }),
      );
      const ask = (index: number) =>
        buyers[index % 2]!(`${h.gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: mockModelId,
            messages: [{ role: "user", content: "the same question" }],
            max_tokens: 16,
          }),
        }).then(async (response) => ({ status: response.status, body: await response.text() }));
      const gatewayRows = async () =>
        (await h.gateway.ledger.payments.recent({ limit: 1000 })).filter(
          (row) => row.payer === buyer.address.toLowerCase(),
        );
      const store = stores[0]!;
      try {
        // Slow answers, so requests overlap: 8 at once from two processes onto a pool of 2 channels.
        h.backend.set({ tokensPerSecond: 100 });
        for (let round = 0; round < 2; round += 1) {
          const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(round * 8 + i)));
          for (const answer of answers) assert.equal(answer.status, 200, answer.body);
        }
        await Promise.all(buyers.map((payingFetch) => payingFetch.idle()));
        const busy = log.of("released").filter((event) => event.reason.includes("channel_busy"));
        assert.deepEqual(busy, [], "no request met a channel serving another");
        const channels = await store.channels({ payer: buyer.address });
        assert.equal(channels.length, 2, "the pool's two channels, shared by both processes");
        for (const channel of channels) assert.equal(channel.deposits, 1, "one deposit per channel");
        let rows = await gatewayRows();
        assert.equal(rows.length, 16);
        const charged = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
        assert.equal((await store.daySpend()).countedAtomic, charged, "every charge counted once");
        assert.equal(
          channels.reduce(
            (sum, channel) => sum + BigInt(channel.context?.chargedCumulativeAmount ?? "0"),
            0n,
          ),
          charged,
        );

        // A daily cap with room for one maximum and two charges, met by 8 requests at once from both
        // processes: a request is signed only while nothing else is reserved and at most two were
        // charged since, so between one and three are served, whichever process sends them.
        const receipts = log.of("receipt");
        const maxAtomic = receipts[0]!.maxAtomic;
        const chargeAtomic = receipts[0]!.chargedAtomic;
        assert.ok(
          receipts.every(
            (receipt) => receipt.chargedAtomic === chargeAtomic && receipt.maxAtomic === maxAtomic,
          ),
        );
        assert.ok(chargeAtomic > 0n && chargeAtomic < maxAtomic);
        const daily = charged + maxAtomic + 2n * chargeAtomic;
        const capped = stores.map((shared) =>
          createPayingFetch({
            privateKey: buyer.privateKey,
            rpcUrl: h.devnet.rpcUrl,
            store: shared,
            onEvent: log.onEvent,
            channelPoolSize: 2,
            policy: { daily },
          }),
        );
        const outcomes = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            capped[i % 2]!(`${h.gateway.url}/v1/chat/completions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({
                model: mockModelId,
                messages: [{ role: "user", content: "the same question" }],
                max_tokens: 16,
              }),
            }).then(
              async (response) => ({ status: response.status, body: await response.text() }),
              (error: unknown) => {
                if (isTollgateError(error, "TOLLGATE_POLICY_REFUSED")) return { refused: error.details.rule };
                throw error;
              },
            ),
          ),
        );
        await Promise.all(capped.map((payingFetch) => payingFetch.idle()));
        const served = outcomes.filter((outcome) => "status" in outcome);
        for (const outcome of served) assert.equal(outcome.status, 200, outcome.body);
        const refused = outcomes.filter((outcome) => "refused" in outcome);
        for (const outcome of refused) assert.equal(outcome.refused, "daily");
        assert.ok(served.length >= 1 && served.length <= 3, `${served.length} served`);
        assert.equal(refused.length, 8 - served.length);
        rows = await gatewayRows();
        assert.equal(rows.length, 16 + served.length, "a refused request never reached the seller");
        const total = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
        const counted = (await store.daySpend()).countedAtomic;
        assert.equal(counted, total, "both processes' charges, counted once");
        assert.ok(counted <= daily, `${counted} within the daily cap ${daily}`);
        assert.deepEqual(
          log.of("released").filter((event) => event.reason.includes("channel_busy")),
          [],
        );
        await Promise.all(capped.map((payingFetch) => payingFetch.close()));
      } finally {
        h.backend.set({ tokensPerSecond: 0 });
        await Promise.all(buyers.map((payingFetch) => payingFetch.close()));
      }
    });
  });
}
