// The buyer SDK and CLI pay Tollgate's own gateway by channel: JSON and streams (the receipt is the
// stream's last event), no transaction after the deposit, charges checked; then the CLI lists the
// buyer's channels and refunds the rest.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { type AddressInfo, createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import OpenAI from "openai";
import { privateKeyToAccount } from "viem/accounts";
import { createPayingFetch, openSpendStore, providerOrigin, refundChannels } from "../src/buyer/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { eventLog, tempDataDir } from "./support/buyerFixtures.js";
import { channelTestConfig } from "./support/channelFixtures.js";
import { expectedCharge, type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { parsePrometheusText, sumOf } from "./support/prometheusText.js";
import { runCli } from "./support/runCli.js";

let h: GatewayHarness;
let dataDir: Awaited<ReturnType<typeof tempDataDir>>;

before(async () => {
  h = await startGatewayHarness({ configure: channelTestConfig });
  dataDir = await tempDataDir();
});
after(async () => {
  await h?.close();
  await dataDir?.remove();
});

async function transactionCount(): Promise<number> {
  const { createPublicClient, http } = await import("viem");
  const client = createPublicClient({ transport: http(h.devnet.rpcUrl) });
  const last = await client.getBlockNumber({ cacheTime: 0 });
  let count = 0;
  for (let block = 0n; block <= last; block += 1n) {
    count += (await client.getBlock({ blockNumber: block })).transactions.length;
  }
  return count;
}

describe("paying Tollgate's gateway by channel", () => {
  test("createPayingFetch: one deposit, then JSON and streamed requests by voucher, each charge = usage × prices", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const log = eventLog();
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      onEvent: log.onEvent,
    });
    try {
      const openai = new OpenAI({
        apiKey: "x402",
        baseURL: `${h.gateway.url}/v1`,
        fetch: payingFetch,
        maxRetries: 0,
      });
      const ask = (content: string) => ({
        model: mockModelId,
        messages: [{ role: "user" as const, content }],
        max_tokens: 64,
      });
      const first = await openai.chat.completions.create(ask("open the channel"));
      assert.ok(first.usage);
      const afterDeposit = await transactionCount();
      for (let i = 0; i < 4; i += 1) await openai.chat.completions.create(ask(`json ${i}`));
      for (let i = 0; i < 3; i += 1) {
        const stream = await openai.chat.completions.create({ ...ask(`stream ${i}`), stream: true });
        for await (const _chunk of stream) {
          // read to the end: the receipt is the last event
        }
      }
      await payingFetch.idle();
      assert.equal(await transactionCount(), afterDeposit, "vouchers send no transaction");

      const receipts = log.of("receipt");
      assert.equal(receipts.length, 8);
      assert.deepEqual(
        log.of("authorized").map((event) => event.scheme),
        Array(8).fill("batch-settlement"),
      );
      for (const receipt of receipts) {
        assert.ok(receipt.usage, `usage in the ${receipt.source} receipt`);
        assert.equal(
          receipt.chargedAtomic,
          expectedCharge(receipt.usage.promptTokens, receipt.usage.completionTokens),
        );
      }
      assert.equal(log.of("overcharge").length, 0);
      assert.equal(
        log.of("released").length,
        0,
        "no voucher refused: the streams' receipts kept the channel in sync",
      );
      const total = receipts.reduce((sum, receipt) => sum + receipt.chargedAtomic, 0n);
      const store = await payingFetch.spendStore();
      assert.equal((await store.daySpend()).countedAtomic, total);
      const [channel] = await store.channels();
      assert.equal(channel?.context?.chargedCumulativeAmount, total.toString());

      const outcomes = await refundChannels({
        store,
        account: privateKeyToAccount(buyer.privateKey),
        origin: providerOrigin(h.gateway.url),
        rpcUrl: h.devnet.rpcUrl,
        refundUrl: `${h.gateway.url}/v1/channels/refund`,
      });
      assert.equal(
        outcomes[0]?.kind,
        "refunded",
        JSON.stringify(outcomes, (_k, v) => (typeof v === "bigint" ? `${v}` : v)),
      );
      assert.equal(await h.devnet.usdcBalance(buyer.address), 100_000_000n - total, "the rest came back");
    } finally {
      await payingFetch.close();
    }
  });

  test("two buyers on one key and separate stores: the one that finds the channel busy waits, resyncs and pays", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const opened = [0, 1].map(() =>
      createPayingFetch({
        privateKey: buyer.privateKey,
        rpcUrl: h.devnet.rpcUrl,
        dataDir: "memory://",
        channelPoolSize: 1,
      }),
    );
    const post = (payingFetch: (typeof opened)[number], content: string) =>
      payingFetch(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: mockModelId, messages: [{ role: "user", content }], max_tokens: 64 }),
      });
    try {
      // Slot 0 of both is the same channel: the first opens it, the second joins it (resyncing once).
      for (const [index, content] of ["open the channel", "join the channel"].entries()) {
        const answer = await post(opened[index]!, content);
        assert.equal(answer.status, 200, await answer.clone().text());
        await answer.json();
      }
      // Both now send a voucher on the same base at once: the seller serves one (slowly) and answers
      // the other channel_busy; that one waits, finds the base moved, resyncs and pays.
      h.backend.set({ firstTokenDelayMs: 800 });
      const answers = await Promise.all([post(opened[0]!, "one"), post(opened[1]!, "two")]);
      for (const answer of answers) {
        assert.equal(
          answer.status,
          200,
          `a busy channel is waited for, not refused: ${await answer.clone().text()}`,
        );
        await answer.json();
      }
      for (const payingFetch of opened) await payingFetch.idle();
      const rows = (await h.gateway.ledger.payments.recent({ limit: 1000 })).filter(
        (row) => row.payer === buyer.address.toLowerCase() && row.status === "settled",
      );
      assert.equal(rows.length, 4, "four requests served, four charges");
      const booked = await Promise.all(
        opened.map(async (payingFetch) => (await payingFetch.spendStore()).daySpend()),
      );
      const bookedAtomic = booked.reduce((sum, day) => sum + day.countedAtomic, 0n);
      const chargedAtomic = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
      // A store cannot tell the other's charges on a voucher both signed from a seller's made-up ones: it
      // counts them too. Nothing the seller charged goes uncounted; no store counts more than was charged.
      assert.ok(
        bookedAtomic >= chargedAtomic,
        `the stores booked ${bookedAtomic} of ${chargedAtomic} charged`,
      );
      for (const day of booked)
        assert.ok(
          day.countedAtomic <= chargedAtomic,
          `a store counted ${day.countedAtomic} of ${chargedAtomic}`,
        );
    } finally {
      h.backend.set({ firstTokenDelayMs: 0 });
      for (const payingFetch of opened) await payingFetch.close();
    }
  });

  test("a stream cut short before its receipt: the next request settles that voucher at the gateway's charge", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const log = eventLog();
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      onEvent: log.onEvent,
    });
    const post = (content: string, stream: boolean) =>
      payingFetch(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: mockModelId,
          messages: [{ role: "user", content }],
          max_tokens: 64,
          ...(stream ? { stream: true } : {}),
        }),
      });
    const gatewayRows = async () =>
      (await h.gateway.ledger.payments.recent({ limit: 1000 }))
        .filter((row) => row.payer === buyer.address.toLowerCase())
        .sort((a, b) => a.id - b.id);
    try {
      const opened = await post("open the channel", false);
      assert.equal(opened.status, 200, await opened.clone().text());
      await opened.json();

      // A slow stream, cancelled by the client after its first chunk: no receipt event reaches the buyer.
      h.backend.set({ tokensPerSecond: 40 });
      const streamed = await post("a long answer", true);
      assert.equal(streamed.status, 200);
      const reader = streamed.body!.getReader();
      assert.equal((await reader.read()).done, false);
      await reader.cancel();
      h.backend.set({ tokensPerSecond: 0 });
      const cutId = log.of("authorized").at(-1)!.paymentId;
      const store = await payingFetch.spendStore();
      const cutBefore = await store.reservation(cutId);
      assert.equal(cutBefore?.status, "reserved", "no receipt: the voucher stays counted at its maximum");
      assert.equal(cutBefore?.countedAtomic, cutBefore?.maxAtomic);
      assert.equal(log.of("unreceipted").length, 1);

      // The gateway charges what it delivered once it sees the client gone.
      let rows = await gatewayRows();
      for (
        let i = 0;
        i < 400 && !(rows.length === 2 && rows.every((row) => row.chargeAtomic !== null));
        i += 1
      ) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        rows = await gatewayRows();
      }
      const cutRow = rows[1];
      assert.ok(
        cutRow?.chargeAtomic !== null && cutRow?.chargeAtomic !== undefined,
        "the cut request was charged",
      );
      assert.ok(cutRow.chargeAtomic > 0n && cutRow.chargeAtomic < cutBefore!.maxAtomic);

      // The next request meets the seller's cumulative (a corrective 402), which settles the lost voucher.
      const next = await post("after the cut", false);
      assert.equal(next.status, 200, await next.clone().text());
      await next.json();
      await payingFetch.idle();
      const cut = await store.reservation(cutId);
      assert.equal(cut?.status, "settled");
      assert.equal(cut?.chargedAtomic, cutRow.chargeAtomic, "the spend store holds the gateway's charge");
      assert.equal(cut?.countedAtomic, cutRow.chargeAtomic);
      assert.deepEqual(
        log.of("reconciled").map((event) => [event.paymentId, event.chargedAtomic]),
        [[cutId, cutRow.chargeAtomic]],
      );
      const all = await gatewayRows();
      assert.equal(all.length, 3);
      const gatewayTotal = all.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
      assert.equal(
        (await store.daySpend()).countedAtomic,
        gatewayTotal,
        "the caps count what the gateway charged",
      );
      const [channel] = await store.channels();
      assert.equal(channel?.context?.chargedCumulativeAmount, gatewayTotal.toString());
    } finally {
      h.backend.set({ tokensPerSecond: 0 });
      await payingFetch.close();
    }
  });

  test("a deposit above confirmAbove is asked about, and new channels open only within maxEscrow across every seller", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const ask = (content: string) =>
      JSON.stringify({ model: mockModelId, messages: [{ role: "user", content }], max_tokens: 16 });
    const post = (payingFetch: typeof fetch, content: string) =>
      payingFetch(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: ask(content),
      });
    // The gateway asks for a $1.00 deposit; the voucher itself is far below confirmAbove.
    const asked: Array<bigint | undefined> = [];
    const declining = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      policy: { confirmAbove: "$0.10" },
      confirm: (request) => {
        asked.push(request.depositAtomic);
        return false;
      },
    });
    try {
      await assert.rejects(
        post(declining, "deposit?"),
        (error: unknown) =>
          isTollgateError(error, "TOLLGATE_POLICY_REFUSED") &&
          /a deposit of \$1\.00 is above confirmAbove \$0\.10 and was not confirmed/.test(error.shortMessage),
      );
      assert.deepEqual(asked, [1_000_000n], "the person was asked, naming the deposit");
    } finally {
      await declining.close();
    }

    // maxEscrow of $1.50: the first channel takes $1.00; a second, opened by a parallel request on
    // another channel of the pool, has only $0.50 of room, and a third none.
    const log = eventLog();
    const bounded = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      policy: { maxEscrow: "$1.50" },
      onEvent: log.onEvent,
    });
    try {
      const walletBefore = await h.devnet.usdcBalance(buyer.address);
      const outcomes = await Promise.allSettled(
        [0, 1, 2].map((i) => post(bounded, `parallel ${i}`).then((response) => response.text())),
      );
      await bounded.idle();
      const refused = outcomes.filter((outcome) => outcome.status === "rejected");
      assert.ok(refused.length >= 1, "at least one opening is refused");
      for (const outcome of refused)
        assert.match(String((outcome as PromiseRejectedResult).reason), /maxEscrow/);
      const deposited = walletBefore - (await h.devnet.usdcBalance(buyer.address));
      assert.ok(deposited <= 1_500_000n, `deposits and charges ${deposited} stay within maxEscrow`);
    } finally {
      await bounded.close();
    }
  });

  test("a seller whose minDeposit hint asks for $50 gets $1.00 from a policy that bounds no deposit (perCall only): the wallet is not pulled into escrow", async () => {
    const greedy = await startGatewayHarness({
      devnet: h.devnet,
      configure: (input) => {
        const config = channelTestConfig(input);
        return { ...config, channels: { ...config.channels, minDeposit: 50_000_000 } };
      },
    });
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      policy: { perCall: "$0.10" },
    });
    try {
      const response = await payingFetch(`${greedy.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: mockModelId,
          messages: [{ role: "user", content: "hi" }],
          max_tokens: 16,
        }),
      });
      assert.equal(response.status, 200, await response.clone().text());
      await response.text();
      await payingFetch.idle();
      // Who pays: the buyer moves $1.00 into the channel (the default cap), not the $50 the seller asked.
      const [channel] = await (await payingFetch.spendStore()).channels({ payer: buyer.address });
      assert.equal(channel?.depositedAtomic, 1_000_000n);
      assert.equal(await h.devnet.usdcBalance(buyer.address), 99_000_000n);
    } finally {
      await payingFetch.close();
      await greedy.close();
    }
  });

  test("a seller that finds the channel's balance short of the next voucher gets a top-up deposit, then serves", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const log = eventLog();
    const chatBody = JSON.stringify({
      model: mockModelId,
      messages: [{ role: "user", content: "top me up" }],
      max_tokens: 32,
    });
    const url = `${h.gateway.url}/v1/chat/completions`;
    const quoted = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody,
    });
    assert.equal(quoted.status, 402);
    await quoted.body?.cancel();
    const maxAtomic = BigInt(
      decodePaymentRequiredHeader(quoted.headers.get("payment-required")!).accepts[0]!.amount,
    );
    // Deposits of exactly one maximum: after one charge the channel cannot cover another maximum.
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      onEvent: log.onEvent,
      policy: { maxDeposit: maxAtomic },
    });
    const post = () =>
      payingFetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: chatBody });
    try {
      const opened = await post();
      assert.equal(opened.status, 200, await opened.clone().text());
      await opened.json();
      const store = await payingFetch.spendStore();
      const [channel] = await store.channels({ payer: buyer.address });
      assert.equal(channel?.depositedAtomic, maxAtomic);
      // The buyer's record overstates the balance (a record restored from elsewhere): it signs a
      // plain voucher the channel cannot cover.
      await store.saveChannelContext(channel.channelId, { ...channel.context, balance: "1000000000" });
      const inferences = h.backend.inferenceRequests.length;
      const next = await post();
      assert.equal(next.status, 200, await next.clone().text());
      await next.json();
      await payingFetch.idle();
      assert.deepEqual(
        log.of("released").map((event) => event.reason),
        ["seller refused the payment (HTTP 402: invalid_batch_settlement_evm_cumulative_exceeds_balance)"],
      );
      assert.equal(
        h.backend.inferenceRequests.length,
        inferences + 1,
        "the refused voucher reached no backend",
      );
      const [toppedUp] = await store.channels({ payer: buyer.address });
      assert.equal(toppedUp?.deposits, 2);
      assert.equal(toppedUp?.depositedAtomic, 2n * maxAtomic);
      const onGateway = await h.gateway.ledger.channels.get(channel.channelId as `0x${string}`);
      assert.equal(onGateway?.balanceAtomic, 2n * maxAtomic, "the top-up is on chain");
      const rows = (await h.gateway.ledger.payments.recent({ limit: 1000 })).filter(
        (row) => row.payer === buyer.address.toLowerCase(),
      );
      assert.equal(rows.length, 2, "the refused voucher left no payment row");
      const charged = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
      assert.equal(onGateway?.chargedAtomic, charged);
      assert.equal((await store.daySpend()).countedAtomic, charged);
    } finally {
      await payingFetch.close();
    }
  });

  test("a channel the seller refunded while it was idle: the buyer's next request deposits again and is served", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const log = eventLog();
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      onEvent: log.onEvent,
    });
    const post = () =>
      payingFetch(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: mockModelId,
          messages: [{ role: "user", content: "idle then back" }],
          max_tokens: 32,
        }),
      });
    try {
      for (let i = 0; i < 2; i += 1) {
        const paid = await post();
        assert.equal(paid.status, 200, await paid.clone().text());
        await paid.json();
      }
      await payingFetch.idle();
      const store = await payingFetch.spendStore();
      const [channel] = await store.channels({ payer: buyer.address });
      assert.ok(channel);
      // The seller gives back every idle channel's unspent balance: the escrow keeps what was charged.
      const scrape = async () => parsePrometheusText(await (await fetch(`${h.gateway.url}/metrics`)).text());
      const metricsBefore = await scrape();
      const heldBefore = await h.gateway.ledger.channels.list();
      const refunded = await h.gateway.channels!.settlement.refundIdle(0);
      assert.ok(refunded.some((refund) => refund.channelId === channel.channelId));
      const onChain = await h.gateway.ledger.channels.get(channel.channelId as `0x${string}`);
      assert.equal(onChain?.balanceAtomic, onChain?.chargedAtomic, "nothing unspent is left in it");
      // Counted as money leaving the channels (every idle one, other tests' too), and any claim a
      // refund made as a claim.
      const metricsAfter = await scrape();
      const added = (kind: string) =>
        sumOf(metricsAfter, "tollgate_channel_atomic_total", { kind }) -
        sumOf(metricsBefore, "tollgate_channel_atomic_total", { kind });
      const refundedIds = new Set(refunded.map((refund) => refund.channelId.toLowerCase()));
      const held = heldBefore.filter((record) => refundedIds.has(record.channelId.toLowerCase()));
      assert.equal(held.length, refunded.length);
      const total = (amountOf: (record: (typeof held)[number]) => bigint) =>
        Number(held.reduce((sum, record) => sum + amountOf(record), 0n));
      assert.equal(
        added("refund"),
        total((record) => record.balanceAtomic - record.chargedAtomic),
      );
      assert.equal(
        added("claim"),
        total((record) => record.chargedAtomic - record.totalClaimedAtomic),
      );

      const back = await post();
      assert.equal(back.status, 200, await back.clone().text());
      await back.json();
      await payingFetch.idle();
      const [after] = await store.channels({ payer: buyer.address });
      assert.equal(after?.deposits, 2, "the channel was topped up once");
      const rows = (await h.gateway.ledger.payments.recent({ limit: 1000 })).filter(
        (row) => row.payer === buyer.address.toLowerCase(),
      );
      assert.equal(rows.length, 3);
      const charged = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
      assert.equal(
        (await h.gateway.ledger.channels.get(channel.channelId as `0x${string}`))?.chargedAtomic,
        charged,
      );
      assert.equal((await store.daySpend()).countedAtomic, charged);
    } finally {
      await payingFetch.close();
    }
  });

  test("without an RPC, a buyer that had its channel refunded pays the same gateway again", async () => {
    // The README's own steps: chat, `tollgate refund --gateway URL`, chat again; none with --rpc.
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const payingFetch = createPayingFetch({ privateKey: buyer.privateKey, dataDir: "memory://" });
    const post = (content: string) =>
      payingFetch(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: mockModelId, messages: [{ role: "user", content }], max_tokens: 32 }),
      });
    try {
      const first = await post("before the refund");
      assert.equal(first.status, 200, await first.clone().text());
      await first.json();
      await payingFetch.idle();
      const store = await payingFetch.spendStore();
      const outcomes = await refundChannels({
        store,
        account: privateKeyToAccount(buyer.privateKey),
        origin: providerOrigin(h.gateway.url),
        refundUrl: `${h.gateway.url}/v1/channels/refund`,
      });
      assert.equal(outcomes[0]?.kind, "refunded");

      const again = await post("after the refund");
      assert.equal(again.status, 200, await again.clone().text());
      await again.json();
      await payingFetch.idle();
      const [channel] = await store.channels({ payer: buyer.address });
      const seller = await h.gateway.ledger.channels.get(channel!.channelId as `0x${string}`);
      assert.equal(channel?.context?.chargedCumulativeAmount, seller?.chargedAtomic.toString());
    } finally {
      await payingFetch.close();
    }
  });

  test("CLI without --rpc, on a channel the seller's record has ahead of this spend store: the refusal says to give --rpc", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const mine = await tempDataDir();
    const other = await tempDataDir();
    try {
      const chat = (path: string) =>
        runCli(["chat", "--gateway", h.gateway.url, "--model", mockModelId, "say hello"], {
          TOLLGATE_PRIVATE_KEY: buyer.privateKey,
          TOLLGATE_DATA_DIR: path,
        });
      const first = await chat(mine.path);
      assert.equal(first.code, 0, first.stderr);
      // Another spend store paying with the same key knows nothing of what the first was charged.
      const behind = await chat(other.path);
      assert.equal(behind.code, 4, behind.stderr);
      assert.match(
        behind.stderr,
        /invalid_batch_settlement_evm_cumulative_amount_mismatch|the seller refused/,
      );
      assert.match(behind.stderr, /payment channel is not this spend store's .*run again with --rpc URL/);
      // As it says: with the chain's RPC, the same store catches up and pays.
      const caughtUp = await runCli(
        ["chat", "--gateway", h.gateway.url, "--model", mockModelId, "--rpc", h.devnet.rpcUrl, "say hello"],
        { TOLLGATE_PRIVATE_KEY: buyer.privateKey, TOLLGATE_DATA_DIR: other.path },
      );
      assert.equal(caughtUp.code, 0, caughtUp.stderr);
    } finally {
      await mine.remove();
      await other.remove();
    }
  });

  test("CLI: refund without --rpc from a seller that does not answer says where nothing answered and to give --rpc", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const other = await tempDataDir();
    const env = { TOLLGATE_PRIVATE_KEY: buyer.privateKey, TOLLGATE_DATA_DIR: other.path };
    try {
      const chat = await runCli(
        ["chat", "--gateway", h.gateway.url, "--model", mockModelId, "say hello"],
        env,
      );
      assert.equal(chat.code, 0, chat.stderr);
      // A port where nothing listens any more.
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
      const { port } = closed.address() as AddressInfo;
      await new Promise((resolve) => closed.close(resolve));
      const refund = await runCli(
        ["refund", "--gateway", h.gateway.url, "--url", `http://127.0.0.1:${port}/v1/channels/refund`],
        env,
      );
      assert.equal(refund.code, 1, refund.stderr + refund.stdout);
      const said = refund.stdout + refund.stderr;
      assert.match(said, new RegExp(`nothing answers at 127\\.0\\.0\\.1:${port}`));
      assert.match(said, /--rpc URL/);
    } finally {
      await other.remove();
    }
  });

  test("CLI: chat pays by channel, channels --buyer lists it, refund returns the rest", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const env = { TOLLGATE_PRIVATE_KEY: buyer.privateKey, TOLLGATE_DATA_DIR: dataDir.path };
    // `pay` meets the 402 and opens the channel; `chat` (which knows the prices from the model
    // listing) then keeps paying by channel, the channel found in the spend store.
    const pay = await runCli(
      [
        "pay",
        "--url",
        `${h.gateway.url}/v1/chat/completions`,
        "--rpc",
        h.devnet.rpcUrl,
        "--body",
        JSON.stringify({
          model: mockModelId,
          messages: [{ role: "user", content: "hello" }],
          max_tokens: 16,
        }),
      ],
      env,
    );
    assert.equal(pay.code, 0, pay.stderr);
    // The first request's transaction is its deposit's, which moved the deposit into escrow, not the charge.
    assert.match(
      pay.stderr,
      /paid \$[0-9.]+ of \$[0-9.]+ authorized \(saved \$[0-9.]+\) · deposited \$[0-9.]+ into a payment channel, tx 0x[0-9a-f]{64} · eip155:31337/,
    );
    const chat = await runCli(
      ["chat", "--gateway", h.gateway.url, "--model", mockModelId, "--rpc", h.devnet.rpcUrl, "say hello"],
      env,
    );
    assert.equal(chat.code, 0, chat.stderr);
    assert.match(
      chat.stderr,
      /paid \$[0-9.]+ of \$[0-9.]+ authorized \(saved \$[0-9.]+\) · by voucher, no transaction/,
    );

    const listed = await runCli(["channels", "--buyer", "--json", "--rpc", h.devnet.rpcUrl], env);
    assert.equal(listed.code, 0, listed.stderr);
    const { channels, totals } = JSON.parse(listed.stdout) as {
      channels: Array<{
        origin: string;
        depositedAtomic: string;
        chargedAtomic: string;
        onChain: { balanceAtomic: string };
      }>;
      totals: Array<{ chargedAtomic: string }>;
    };
    assert.equal(channels.length, 1, "one channel for both commands");
    assert.equal(channels[0]?.origin, providerOrigin(h.gateway.url));
    assert.equal(channels[0]?.onChain.balanceAtomic, channels[0]?.depositedAtomic);
    assert.equal(totals.length, 1, "one network and asset");
    const charged = BigInt(totals[0]!.chargedAtomic);
    assert.ok(charged > 0n);

    const refund = await runCli(["refund", "--gateway", h.gateway.url, "--rpc", h.devnet.rpcUrl], env);
    assert.equal(refund.code, 0, refund.stderr + refund.stdout);
    assert.match(refund.stdout, /refunded/);
    assert.equal(await h.devnet.usdcBalance(buyer.address), 100_000_000n - charged);
  });

  test("CLI: channels --buyer leaves out of its totals a channel --rpc's chain never held, and totals each network apart", async () => {
    const other = await tempDataDir();
    try {
      const store = await openSpendStore({ dataDir: other.path });
      const channelOf = (network: string) => ({
        channelId: `0x${randomBytes(32).toString("hex")}`,
        payer: "0x000000000000000000000000000000000000dEaD",
        origin: providerOrigin(h.gateway.url),
        url: `${h.gateway.url}/v1/chat/completions`,
        network,
        asset: h.devnet.contracts.usdc,
        payTo: h.devnet.accounts.payTo.address,
        receiverAuthorizer: h.devnet.accounts.facilitator.address,
        withdrawDelay: 900,
        salt: "0x0",
        slot: 0,
        config: {},
      });
      // A channel of a devnet since started afresh (its id unknown to this chain), and one on Base.
      const gone = channelOf(h.devnet.network);
      const base = channelOf("eip155:8453");
      for (const [channel, deposited] of [
        [gone, 700_000n],
        [base, 300_000n],
      ] as const) {
        await store.recordChannel(channel);
        await store.recordDeposit(channel.channelId, deposited);
        await store.saveChannelContext(channel.channelId, {
          balance: deposited.toString(),
          chargedCumulativeAmount: "1000",
        } as never);
      }
      await store.close();
      const env = { TOLLGATE_DATA_DIR: other.path };
      const listed = await runCli(["channels", "--buyer", "--json", "--rpc", h.devnet.rpcUrl], env);
      assert.equal(listed.code, 0, listed.stderr);
      const { channels, totals } = JSON.parse(listed.stdout) as {
        channels: Array<{ channelId: string; missingOnChain: boolean; onChain: unknown }>;
        totals: Array<{ network: string; depositedAtomic: string; remainingAtomic: string }>;
      };
      const listedGone = channels.find((channel) => channel.channelId === gone.channelId);
      const listedBase = channels.find((channel) => channel.channelId === base.channelId);
      assert.equal(listedGone?.missingOnChain, true);
      assert.equal(listedBase?.missingOnChain, false);
      assert.equal(listedBase?.onChain, null, "not read on another chain");
      assert.deepEqual(
        totals.map((total) => [total.network, total.depositedAtomic, total.remainingAtomic]),
        [["eip155:8453", "300000", "299000"]],
        "the missing channel is in no total; Base's is its own",
      );
      const text = await runCli(["channels", "--buyer", "--rpc", h.devnet.rpcUrl], env);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /not on this chain: .*left out of the totals/);
      assert.match(text.stdout, /total on eip155:8453 \(0x[0-9a-fA-F]{40}\): deposited \$0\.30/);
    } finally {
      await other.remove();
    }
  });
});
