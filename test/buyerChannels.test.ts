// The buyer pays channels (x402 batch-settlement) through @x402/evm's client scheme, against a
// seller built from the official server pieces and Tollgate's facilitator on the devnet.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { privateKeyToAccount } from "viem/accounts";
import {
  createSpendStore,
  openSpendStore,
  providerOrigin,
  refundChannels,
  type SpendStore,
} from "../src/buyer/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { createPostgresClient } from "../src/ledger/index.js";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentRequiredHeader,
  encodePaymentResponseHeader,
  PAYMENT_REQUIRED_HEADER,
  PAYMENT_RESPONSE_HEADER,
  PAYMENT_SIGNATURE_HEADER,
} from "../src/protocol/index.js";
import { eventLog } from "./support/buyerFixtures.js";
import type { BuyerProcessJob, BuyerProcessOutcome } from "./support/buyerProcessWorker.js";
import {
  type ChannelHarness,
  type ChannelSeller,
  postChat,
  startChannelHarness,
} from "./support/channelHarness.js";

let h: ChannelHarness;
let seller: ChannelSeller;

before(async () => {
  h = await startChannelHarness();
  seller = await h.seller();
});
after(async () => {
  await h?.close();
});

describe("paying by channel", () => {
  test("one deposit, then vouchers with no transaction; each charge reconciled from the receipt", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const log = eventLog();
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey, onEvent: log.onEvent });

    const first = await postChat(payingFetch, seller.url);
    assert.equal(first.status, 200, first.body);
    const [channel] = await (await payingFetch.spendStore()).channels();
    assert.ok(channel, "the channel is recorded");
    const deposited = channel.depositedAtomic;
    assert.ok(deposited >= 1000n, `deposit ${deposited} covers the request's maximum`);
    assert.deepEqual(await h.channelOf(channel.channelId), { balance: deposited, totalClaimed: 0n });
    assert.equal(await h.devnet.usdcBalance(buyer.address), 10_000_000n - deposited);

    const transactionsAfterDeposit = await h.transactionCount();
    for (let i = 0; i < 12; i += 1) {
      const answer = await postChat(payingFetch, seller.url);
      assert.equal(answer.status, 200, answer.body);
    }
    await payingFetch.idle();
    assert.equal(await h.transactionCount(), transactionsAfterDeposit, "vouchers send no transaction");
    assert.equal(
      await h.devnet.usdcBalance(buyer.address),
      10_000_000n - deposited,
      "nothing else left the wallet",
    );

    const receipts = log.of("receipt");
    assert.equal(receipts.length, 13);
    for (const receipt of receipts) {
      assert.equal(receipt.chargedAtomic, seller.honestChargeAtomic);
      assert.equal(receipt.maxAtomic, 1000n);
    }
    assert.equal(log.of("overcharge").length, 0);
    const today = await (await payingFetch.spendStore()).daySpend();
    assert.equal(today.countedAtomic, 13n * seller.honestChargeAtomic, "the caps count the charges");
    const [after] = await (await payingFetch.spendStore()).channels();
    assert.equal(after?.context?.chargedCumulativeAmount, (13n * seller.honestChargeAtomic).toString());
    assert.equal(after?.deposits, 1);

    // The seller claims the vouchers and settles: payTo receives exactly the sum of the charges.
    const payTo = h.devnet.accounts.payTo.address;
    const before = await h.devnet.usdcBalance(payTo);
    await seller.claimAndSettle();
    assert.equal(await h.devnet.usdcBalance(payTo), before + 13n * seller.honestChargeAtomic);
  });
});

/** Runs `work` and answers the policy refusal it throws. */
async function refusalOf(work: Promise<unknown>) {
  try {
    await work;
  } catch (error) {
    if (isTollgateError(error, "TOLLGATE_POLICY_REFUSED")) return error.details;
    throw error;
  }
  throw new assert.AssertionError({ message: "expected a policy refusal" });
}

describe("caps hold across deposit and vouchers", () => {
  test("the deposit fits the room under the daily cap, each voucher reserves its maximum, the cap refuses the next", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const dailyAtomic = 2000n;
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey, policy: { daily: dailyAtomic } });
    const charge = seller.honestChargeAtomic;
    let paid = 0n;
    // Each voucher needs room for its maximum (1,000): 0, 350 and 700 counted leave room; 1,050 does not.
    for (let i = 0; i < 3; i += 1) {
      const answer = await postChat(payingFetch, seller.url);
      assert.equal(answer.status, 200, answer.body);
      paid += charge;
    }
    const transactions = await h.transactionCount();
    const refusal = await refusalOf(postChat(payingFetch, seller.url));
    assert.equal(refusal.rule, "daily");
    assert.equal(refusal.spentAtomic, paid);
    assert.equal(await h.transactionCount(), transactions, "a refusal sends nothing");

    const store = await payingFetch.spendStore();
    const [channel] = await store.channels({ payer: buyer.address });
    assert.ok(channel);
    assert.ok(channel.depositedAtomic <= dailyAtomic, `deposit ${channel.depositedAtomic} within the cap`);
    assert.equal(await h.devnet.usdcBalance(buyer.address), 10_000_000n - channel.depositedAtomic);
    assert.equal((await store.daySpend()).countedAtomic, paid);
    assert.ok(paid <= dailyAtomic);
    assert.equal(channel.context?.chargedCumulativeAmount, paid.toString());
  });

  test("a maxDeposit or a daily cap below what the deposit needs refuses before signing and moves nothing", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const transactions = await h.transactionCount();
    const tight = h.payingFetch({ privateKey: buyer.privateKey, policy: { maxDeposit: 999n } });
    const byDeposit = await refusalOf(postChat(tight, seller.url));
    assert.equal(byDeposit.rule, "maxDeposit");
    assert.equal(byDeposit.askedAtomic, 1000n);
    assert.match(
      String((await refusalError(postChat(tight, seller.url))).shortMessage),
      /deposit of at least \$0\.001/,
    );

    const perProvider = h.payingFetch({
      privateKey: buyer.privateKey,
      policy: { maxDeposit: "$1", providers: { [seller.url]: { maxDeposit: 500n } } },
    });
    assert.equal((await refusalOf(postChat(perProvider, seller.url))).rule, "providers.maxDeposit");

    const poor = h.payingFetch({ privateKey: buyer.privateKey, policy: { daily: 999n } });
    assert.equal((await refusalOf(postChat(poor, seller.url))).rule, "daily");

    assert.equal(await h.transactionCount(), transactions, "no transaction");
    assert.equal(await h.devnet.usdcBalance(buyer.address), 10_000_000n, "nothing left the wallet");
    for (const payingFetch of [tight, perProvider, poor]) {
      assert.equal((await (await payingFetch.spendStore()).daySpend()).countedAtomic, 0n, "nothing reserved");
    }
  });

  test("a provider that changes its channel's terms at every request holds at most one maxDeposit per slot of the pool", async () => {
    const sellers = await Promise.all(Array.from({ length: 4 }, () => h.seller()));
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const origin = "http://rotating.invalid";
    let unpaid = -1;
    // One origin, a new receiverAuthorizer (another seller behind it) at every request: a new channel each time.
    const rotating: typeof fetch = async (input, init) => {
      if (!new Headers(init?.headers).has(PAYMENT_SIGNATURE_HEADER)) unpaid += 1;
      return fetch(String(input).replace(origin, sellers[unpaid % sellers.length]!.url), init);
    };
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      fetch: rotating,
      channelPoolSize: 2,
      policy: { maxDeposit: 2_000n },
    });
    for (let i = 0; i < 2; i += 1) assert.equal((await postChat(payingFetch, origin)).status, 200);
    const refusal = await refusalError(postChat(payingFetch, origin));
    assert.equal(refusal.details.rule, "maxDeposit");
    assert.match(refusal.shortMessage, /already holds .* unspent in its channels/);
    const channels = await (await payingFetch.spendStore()).channels({ origin });
    assert.equal(channels.length, 3, "the third channel was recorded, and nothing deposited into it");
    const deposited = channels.reduce((sum, channel) => sum + channel.depositedAtomic, 0n);
    assert.ok(deposited <= 2n * 2_000n, `deposited ${deposited}`);
  });

  test("openings planned at the same moment count each other's deposits: a burst on new terms still holds at most one maxDeposit per slot", async () => {
    const sellers = await Promise.all(Array.from({ length: 3 }, () => h.seller({ handlerDelayMs: 300 })));
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const origin = "http://rotating-burst.invalid";
    // Each request names the seller behind the origin that serves it (x-seller): three sets of channel terms.
    const routed: typeof fetch = async (input, init) => {
      const which = Number(
        new Headers(input instanceof Request ? input.headers : init?.headers).get("x-seller"),
      );
      return fetch(String(input).replace(origin, sellers[which]!.url), init);
    };
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      fetch: routed,
      channelPoolSize: 2,
      policy: { maxDeposit: 2_000n },
    });
    const chat = async (seller: number) => {
      const response = await payingFetch(`${origin}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-seller": String(seller) },
        body: JSON.stringify({ model: "official-model", messages: [{ role: "user", content: "hi" }] }),
      });
      await response.text();
      return response.status;
    };
    // One channel on the first terms: 2,000 deposited, 350 charged, 1,650 held.
    assert.equal(await chat(0), 200);
    // Two openings at once on two new sets of terms: the room under 2 × 2,000 is 2,350, one deposit's worth.
    const burst = await Promise.allSettled([chat(1), chat(2)]);
    const served = burst.filter((outcome) => outcome.status === "fulfilled" && outcome.value === 200);
    const refused = burst.flatMap((outcome) =>
      outcome.status === "rejected" && isTollgateError(outcome.reason, "TOLLGATE_POLICY_REFUSED")
        ? [outcome.reason]
        : [],
    );
    assert.equal(served.length, 1, "one opening fits");
    assert.equal(refused.length, 1, "the other is refused before signing");
    assert.match(refused[0]!.shortMessage, /already holds .* unspent in its channels/);
    await payingFetch.idle();
    const channels = await (await payingFetch.spendStore()).channels({ origin });
    const deposited = channels.reduce((sum, channel) => sum + channel.depositedAtomic, 0n);
    assert.equal(deposited, 2n * 2_000n, "two deposits of 2,000: the pool's bound");
  });
});

describe("openings of one payer in one process", () => {
  /** What the buyer deposited into the channels of `origins`, as its store recorded. */
  async function depositedWith(payingFetch: { spendStore(): Promise<SpendStore> }, origins: string[]) {
    const store = await payingFetch.spendStore();
    let deposited = 0n;
    for (const origin of origins)
      for (const channel of await store.channels({ origin })) deposited += channel.depositedAtomic;
    return deposited;
  }

  test("openings with two sellers at the same moment count each other against maxEscrow: one fits, the other is refused", async () => {
    const first = await h.seller({ handlerDelayMs: 300 });
    const second = await h.seller({ handlerDelayMs: 300 });
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey, policy: { maxEscrow: 6_000n } });
    const outcomes = await Promise.allSettled([
      postChat(payingFetch, first.url),
      postChat(payingFetch, second.url),
    ]);
    await payingFetch.idle();
    const served = outcomes.filter(
      (outcome) => outcome.status === "fulfilled" && outcome.value.status === 200,
    );
    const refused = outcomes.flatMap((outcome) =>
      outcome.status === "rejected" && isTollgateError(outcome.reason, "TOLLGATE_POLICY_REFUSED")
        ? [outcome.reason]
        : [],
    );
    const deposited = await depositedWith(payingFetch, [
      providerOrigin(first.url),
      providerOrigin(second.url),
    ]);
    assert.ok(deposited <= 6_000n, `deposited ${deposited} in all, above maxEscrow 6,000`);
    assert.equal(served.length, 1, "one opening fits");
    assert.deepEqual(
      refused.map((error) => error.details.rule),
      ["maxEscrow"],
    );
  });

  test("two paying fetches of one key on one store (an MCP server's sessions) count each other's openings against maxEscrow", async () => {
    const slow = await h.seller({ handlerDelayMs: 300 });
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const store = await openSpendStore({ dataDir: "memory://" });
    try {
      const policy = { maxEscrow: 3_000n, maxDeposit: 2_000n };
      const sessions = [
        h.payingFetch({ privateKey: buyer.privateKey, store, policy }),
        h.payingFetch({ privateKey: buyer.privateKey, store, policy }),
      ];
      const answers = await Promise.all(sessions.map((payingFetch) => postChat(payingFetch, slow.url)));
      for (const answer of answers) assert.equal(answer.status, 200, answer.body);
      for (const payingFetch of sessions) await payingFetch.idle();
      const channels = await store.channels({ origin: providerOrigin(slow.url) });
      assert.equal(channels.length, 2, "each session paid on a channel of its own");
      const deposited = await depositedWith(sessions[0]!, [providerOrigin(slow.url)]);
      assert.ok(deposited <= 3_000n, `deposited ${deposited} in all, above maxEscrow 3,000`);
    } finally {
      await store.close();
    }
  });
});

describe("openings of one payer in two processes sharing a PostgreSQL spend store", () => {
  // Tests may read the environment; the library never does.
  const connectionString = process.env.TOLLGATE_TEST_DATABASE_URL;
  const bootstrap = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})
    .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL("./support/buyerProcessWorker.ts", import.meta.url).href)}); })`;

  /** One request paid by a buyer process of its own (a worker thread: its own modules), on the shared store. */
  function payInOwnProcess(job: BuyerProcessJob): Promise<BuyerProcessOutcome> {
    const worker = new Worker(bootstrap, { eval: true, env: { ...process.env, TOLLGATE_LOG_LEVEL: "warn" } });
    return new Promise<BuyerProcessOutcome>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.postMessage(job);
    }).finally(() => worker.terminate());
  }

  test("openings with two sellers at the same moment from two processes count each other against maxEscrow: one fits, the other is refused", {
    skip: connectionString ? false : "set TOLLGATE_TEST_DATABASE_URL to run against PostgreSQL",
  }, async () => {
    const schema = `tollgate_spend_${process.pid}_${Date.now().toString(36)}`;
    const admin = await createPostgresClient({ connectionString: connectionString! });
    await admin.exec(`CREATE SCHEMA "${schema}"`);
    // The schema's tables exist before the processes race to create them.
    await (
      await createSpendStore({
        sql: await createPostgresClient({ connectionString: connectionString!, schema }),
      })
    ).close();
    try {
      const first = await h.seller({ handlerDelayMs: 300 });
      const second = await h.seller({ handlerDelayMs: 300 });
      const buyer = await h.devnet.createBuyer(100_000_000n);
      const job = (sellerUrl: string): BuyerProcessJob => ({
        privateKey: buyer.privateKey,
        rpcUrl: h.devnet.rpcUrl,
        connectionString: connectionString!,
        schema,
        url: `${sellerUrl}/v1/chat/completions`,
        body: JSON.stringify({
          model: "official-model",
          messages: [{ role: "user", content: "tell me about toll roads ".repeat(40) }],
          max_tokens: 200,
        }),
        policy: { maxEscrow: 6_000n },
      });
      const outcomes = await Promise.all([payInOwnProcess(job(first.url)), payInOwnProcess(job(second.url))]);
      const served = outcomes.filter((outcome) => "status" in outcome && outcome.status === 200);
      const refused = outcomes.flatMap((outcome) => ("refused" in outcome ? [outcome.refused] : []));
      // What the buyer's wallet sent into escrow, on chain: every deposit, whichever process made it.
      const deposited = 100_000_000n - (await h.devnet.usdcBalance(buyer.address));
      assert.ok(deposited <= 6_000n, `deposited ${deposited} in all, above maxEscrow 6,000`);
      assert.equal(served.length, 1, `one opening fits: ${JSON.stringify(outcomes)}`);
      assert.deepEqual(refused, ["maxEscrow"]);
    } finally {
      await admin.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => admin.close());
    }
  });
});

/** The payment a request carries in its signature header, as sent, or undefined for an unpaid one. */
function signedPaymentOf(init: RequestInit | undefined) {
  const signature = new Headers(init?.headers).get(PAYMENT_SIGNATURE_HEADER);
  if (!signature) return undefined;
  const payment = JSON.parse(Buffer.from(signature, "base64").toString()) as {
    accepted: Record<string, unknown>;
    payload: { type: string };
  };
  return { signature, payment };
}

/**
 * A seller's fetch that answers every paid request 402, having first settled the deposit it carries
 * through the facilitator; `depositsTaken` counts those deposits.
 */
function depositTakingSeller() {
  let taken = 0;
  const takingFetch: typeof fetch = async (input, init) => {
    const paid = signedPaymentOf(init);
    if (!paid) return fetch(input, init);
    const { payment } = paid;
    if (payment.payload.type === "deposit") {
      const settled = await h.facilitator.settle(payment as never, payment.accepted as never);
      assert.ok(settled.success, String(settled.errorReason));
      taken += 1;
    }
    const required = {
      x402Version: 2,
      error: "invalid_batch_settlement_evm_payload_rejected",
      resource: { url: String(input) },
      accepts: [payment.accepted],
    };
    return new Response("{}", {
      status: 402,
      headers: { [PAYMENT_REQUIRED_HEADER]: encodePaymentRequiredHeader(required as never) },
    });
  };
  return { fetch: takingFetch, depositsTaken: () => taken };
}

async function refusalError(work: Promise<unknown>) {
  try {
    await work;
  } catch (error) {
    if (isTollgateError(error, "TOLLGATE_POLICY_REFUSED")) return error;
    throw error;
  }
  throw new assert.AssertionError({ message: "expected a policy refusal" });
}

/** A buyer with a pool of `channelPoolSize` channels, and a seller slow enough for a burst to need several. */
async function poolBuyer(channelPoolSize: number, policy?: { maxDeposit: bigint }) {
  const slow = await h.seller({ handlerDelayMs: 300 });
  const buyer = await h.devnet.createBuyer(10_000_000n);
  const log = eventLog();
  const payingFetch = h.payingFetch({
    privateKey: buyer.privateKey,
    onEvent: log.onEvent,
    channelPoolSize,
    ...(policy ? { policy } : {}),
  });
  return { slow, log, payingFetch };
}

describe("a pool of channels", () => {
  test("a parallel burst to one seller uses several channels, each with one request at a time", async () => {
    const { slow, log, payingFetch } = await poolBuyer(3);
    const answers = await Promise.all(Array.from({ length: 6 }, () => postChat(payingFetch, slow.url)));
    for (const answer of answers) assert.equal(answer.status, 200, answer.body);
    await payingFetch.idle();
    const channels = await (await payingFetch.spendStore()).channels({ origin: providerOrigin(slow.url) });
    assert.ok(channels.length >= 2, `${channels.length} channels opened`);
    assert.ok(channels.length <= 3, "never more than the pool's size");
    assert.equal(new Set(channels.map((channel) => channel.salt)).size, channels.length);
    const charged = channels.reduce(
      (sum, channel) => sum + BigInt(channel.context?.chargedCumulativeAmount ?? "0"),
      0n,
    );
    assert.equal(charged, 6n * slow.honestChargeAtomic, "every request charged once, on some channel");
    assert.equal(log.of("released").length, 0, "no voucher refused as busy or out of sync");
    for (const channel of channels) assert.equal(channel.deposits, 1);
  });
});

describe("topping up a channel of the pool", () => {
  test("a top-up under a policy bounding deposits by maxEscrow alone stays within it: a seller's minDeposit hint of $1 does not size it", async () => {
    // Each request may cost 4,000 and costs 3,000; the seller asks for $1 deposits.
    const dear = await h.seller({
      maxAtomic: 4_000n,
      prices: { inputPerMTokAtomic: 10_000_000n, outputPerMTokAtomic: 10_000_000n, fixedFeeAtomic: 0n },
      minDepositAtomic: 1_000_000n,
    });
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey, policy: { maxEscrow: 10_000n } });
    // The opening fills maxEscrow (10,000); three requests charge 9,000, and the fourth needs a top-up.
    for (let i = 0; i < 4; i += 1) {
      const answer = await postChat(payingFetch, dear.url);
      assert.equal(answer.status, 200, answer.body);
    }
    await payingFetch.idle();
    const [channel] = await (await payingFetch.spendStore()).channels({ payer: buyer.address });
    assert.ok(channel);
    assert.equal(channel.deposits, 2, "the opening and one top-up");
    const onChain = await h.channelOf(channel.channelId);
    const unspent = onChain.balance - BigInt(channel.context?.chargedCumulativeAmount ?? "0");
    assert.equal(
      onChain.balance,
      19_000n,
      "the top-up brings what the seller holds unspent back to maxEscrow",
    );
    assert.ok(unspent <= 10_000n, `the seller holds ${unspent} unspent, within maxEscrow`);
  });

  test("a channel in use is topped up even when the provider holds more than the opening bound allows, which counts only new channels", async () => {
    // maxDeposit = one request's maximum (1,000): each deposit is 1,000, and a pool of 2 may open
    // channels while the provider holds under 2,000 of the buyer's, unspent.
    const { slow, log, payingFetch } = await poolBuyer(2, { maxDeposit: 1_000n });
    const burst = async () => {
      const answers = await Promise.all([postChat(payingFetch, slow.url), postChat(payingFetch, slow.url)]);
      for (const answer of answers) assert.equal(answer.status, 200, answer.body);
    };
    const channels = async () =>
      (await (await payingFetch.spendStore()).channels({ origin: providerOrigin(slow.url) })).map(
        (channel) => ({
          deposits: channel.deposits,
          deposited: channel.depositedAtomic,
        }),
      );
    await burst();
    assert.deepEqual(await channels(), [
      { deposits: 1, deposited: 1_000n },
      { deposits: 1, deposited: 1_000n },
    ]);
    // One channel needs a top-up for its next voucher (650 left, 1,000 needed): 1,000 more.
    assert.equal((await postChat(payingFetch, slow.url)).status, 200);
    // Now the provider holds 650 + 1,650 unspent; the other channel's top-up is above 2 × 1,000 counted
    // that way, and is made all the same: it follows the charges, which the caps count.
    await burst();
    await payingFetch.idle();
    assert.deepEqual(
      (await channels()).map((channel) => channel.deposits),
      [2, 2],
      "both channels topped up once",
    );
    assert.equal(log.of("refused").length, 0, "nothing refused");
  });
});

describe("trust, but verify", () => {
  test("a charge above what the usage justifies at the quoted prices is flagged", async () => {
    const greedy = await h.seller({ overchargeAtomic: 100n });
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const log = eventLog();
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey, onEvent: log.onEvent });
    for (let i = 0; i < 2; i += 1) assert.equal((await postChat(payingFetch, greedy.url)).status, 200);
    await payingFetch.idle();
    const overcharges = log.of("overcharge");
    assert.equal(overcharges.length, 2, "the deposit's charge and the voucher's");
    for (const overcharge of overcharges) {
      assert.equal(overcharge.reason, "above_usage");
      assert.equal(overcharge.chargedAtomic, greedy.chargedAtomic);
      assert.equal(overcharge.justifiedAtomic, greedy.honestChargeAtomic);
    }
    const disputes = await (await payingFetch.spendStore()).disputes({ status: "open" });
    assert.equal(disputes.length, 2);
  });

  for (const busyFirst of [false, true])
    test(`a seller whose receipts understate its charges is caught at its next corrective 402: the excess counts against the caps and is disputed, once${busyFirst ? " (a channel_busy refusal first changes nothing)" : ""}`, async () => {
      // The seller takes each request's whole maximum, and its receipts say the honest charge.
      const greedy = await h.seller({ overchargeAtomic: 1_000_000n });
      const buyer = await h.devnet.createBuyer(10_000_000n);
      const log = eventLog();
      let unpaid = -1;
      let lastOffer: string | null = null;
      const busied = new Set<number>();
      const understating: typeof fetch = async (input, init) => {
        const paid = new Headers(init?.headers).has(PAYMENT_SIGNATURE_HEADER);
        if (!paid) unpaid += 1;
        // A refusal as busy before each corrective 402: the refused retry is not the seller's latest voucher.
        if (busyFirst && paid && unpaid > 0 && !busied.has(unpaid) && lastOffer) {
          busied.add(unpaid);
          const decoded = decodePaymentRequiredHeader(lastOffer);
          if (decoded.ok) {
            const busy = { ...decoded.paymentRequired, error: "invalid_batch_settlement_evm_channel_busy" };
            return new Response("busy", {
              status: 402,
              headers: { [PAYMENT_REQUIRED_HEADER]: encodePaymentRequiredHeader(busy as never) },
            });
          }
        }
        const response = await fetch(input, init);
        if (!paid && response.status === 402) lastOffer = response.headers.get(PAYMENT_REQUIRED_HEADER);
        const header = response.headers.get(PAYMENT_RESPONSE_HEADER);
        const decoded = header ? decodePaymentResponseHeader(header) : undefined;
        if (!decoded?.ok) return response;
        const settled = decoded.settleResponse as unknown as {
          extra: { chargedAmount: string; channelState: { chargedCumulativeAmount: string } };
        };
        const taken = BigInt(settled.extra.chargedAmount);
        const cumulative = BigInt(settled.extra.channelState.chargedCumulativeAmount);
        const told = greedy.honestChargeAtomic;
        settled.extra.chargedAmount = told.toString();
        settled.extra.channelState.chargedCumulativeAmount = (cumulative - taken + told).toString();
        const headers = new Headers(response.headers);
        headers.set(PAYMENT_RESPONSE_HEADER, encodePaymentResponseHeader(settled as never));
        return new Response(response.body, { status: response.status, headers });
      };
      const payingFetch = h.payingFetch({
        privateKey: buyer.privateKey,
        onEvent: log.onEvent,
        fetch: understating,
      });
      const statuses: number[] = [];
      for (let i = 0; i < 4; i += 1) statuses.push((await postChat(payingFetch, greedy.url)).status);
      await payingFetch.idle();
      // Each request after the first meets the seller's corrective 402, which states the total taken.
      assert.deepEqual(statuses, [200, 402, 200, 402]);
      const store = await payingFetch.spendStore();
      const before = await h.devnet.usdcBalance(h.devnet.accounts.payTo.address);
      await greedy.claimAndSettle();
      const taken = (await h.devnet.usdcBalance(h.devnet.accounts.payTo.address)) - before;
      assert.equal(taken, 2n * greedy.chargedAtomic, "the seller took the maximum twice");
      assert.equal((await store.daySpend()).countedAtomic, taken, "and every cap counts all of it");
      const overcharges = log.of("overcharge");
      assert.deepEqual(
        overcharges.map((event) => [event.reason, event.chargedAtomic]),
        [
          ["above_receipts", greedy.chargedAtomic - greedy.honestChargeAtomic],
          ["above_receipts", greedy.chargedAtomic - greedy.honestChargeAtomic],
        ],
        "each understatement disputed once",
      );
      assert.equal((await store.disputes({ status: "open" })).length, 2);
    });

  test("a seller that answers each voucher with a corrective 402 naming that very voucher as charged in full gets no voucher past what the caps count", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const log = eventLog();
    let offer: Record<string, unknown> | undefined;
    // What the seller holds: the highest voucher the payer signed, whatever it answered.
    let heldAtomic = 0n;
    // The first request opens the channel and is served; every later voucher is "refused" with a
    // corrective 402 whose channel state says that voucher was charged in full, its own signature as proof.
    const inflating: typeof fetch = async (input, init) => {
      const signature = new Headers(init?.headers).get(PAYMENT_SIGNATURE_HEADER);
      const payment = signature
        ? (JSON.parse(Buffer.from(signature, "base64").toString()) as {
            payload: {
              type: string;
              voucher: { channelId: string; maxClaimableAmount: string; signature: string };
            };
          })
        : undefined;
      if (payment) {
        const signed = BigInt(payment.payload.voucher.maxClaimableAmount);
        if (signed > heldAtomic) heldAtomic = signed;
      }
      if (payment?.payload.type === "voucher" && offer) {
        const { voucher } = payment.payload;
        const required = {
          x402Version: 2,
          error: "invalid_batch_settlement_evm_cumulative_amount_mismatch",
          resource: { url: String(input) },
          accepts: [
            {
              ...offer,
              extra: {
                ...(offer.extra as object),
                channelState: {
                  channelId: voucher.channelId,
                  chargedCumulativeAmount: voucher.maxClaimableAmount,
                  balance: "0",
                  totalClaimed: "0",
                },
                voucherState: {
                  signedMaxClaimable: voucher.maxClaimableAmount,
                  signature: voucher.signature,
                },
              },
            },
          ],
        };
        return new Response("{}", {
          status: 402,
          headers: { [PAYMENT_REQUIRED_HEADER]: encodePaymentRequiredHeader(required as never) },
        });
      }
      const response = await fetch(input, init);
      if (response.status === 402 && !signature) {
        const decoded = decodePaymentRequiredHeader(response.headers.get(PAYMENT_REQUIRED_HEADER));
        if (decoded.ok) offer = decoded.paymentRequired.accepts[0] as unknown as Record<string, unknown>;
      }
      return response;
    };
    const daily = 4_000n;
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      fetch: inflating,
      onEvent: log.onEvent,
      policy: { daily },
    });
    const outcomes: Array<number | string> = [];
    for (let i = 0; i < 12; i += 1)
      outcomes.push(
        await postChat(payingFetch, seller.url).then(
          (answer) => answer.status,
          (error: unknown) => (isTollgateError(error) ? error.code : String(error)),
        ),
      );
    await payingFetch.idle();
    const store = await payingFetch.spendStore();
    const counted = (await store.daySpend()).countedAtomic;
    assert.equal(outcomes[0], 200, "the first request is served");
    assert.ok(
      heldAtomic <= counted,
      `the seller holds a voucher for ${heldAtomic}; the buyer counted ${counted} against its caps (${outcomes.join(", ")})`,
    );
    assert.ok(
      heldAtomic <= daily,
      `the seller holds a voucher for ${heldAtomic}, above the daily cap of ${daily}`,
    );
    // Each refused voucher stated as charged is disputed once, for what it signs past what was counted:
    // together, all the seller holds past the one request it served.
    const overcharges = log.of("overcharge");
    assert.ok(overcharges.length >= 1);
    for (const event of overcharges) assert.equal(event.reason, "above_receipts");
    assert.equal(
      overcharges.reduce((sum, event) => sum + event.chargedAtomic, 0n),
      heldAtomic - seller.honestChargeAtomic,
    );
    assert.equal((await store.disputes({ status: "open" })).length, overcharges.length);
    assert.ok(
      outcomes.includes("TOLLGATE_POLICY_REFUSED"),
      "the daily cap, counting it, stops the buyer signing more",
    );
  });

  test("a seller that claims its latest voucher whole on chain, then sends a corrective 402 without its voucher, has the claim above the receipts counted and disputed", async () => {
    const greedy = await h.seller();
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const log = eventLog();
    // The seller's corrective 402s leave out its copy of the buyer's voucher: the buyer can only resync from the chain.
    const withoutVoucher: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const decoded = decodePaymentRequiredHeader(response.headers.get(PAYMENT_REQUIRED_HEADER));
      if (response.status !== 402 || !decoded.ok || !decoded.paymentRequired.error) return response;
      const required = {
        ...decoded.paymentRequired,
        accepts: decoded.paymentRequired.accepts.map((offer) => {
          const { voucherState: _dropped, ...extra } = (offer.extra ?? {}) as Record<string, unknown>;
          return { ...offer, extra };
        }),
      };
      const headers = new Headers(response.headers);
      headers.set(PAYMENT_REQUIRED_HEADER, encodePaymentRequiredHeader(required as never));
      return new Response(response.body, { status: 402, headers });
    };
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      onEvent: log.onEvent,
      fetch: withoutVoucher,
    });
    for (let i = 0; i < 2; i += 1) assert.equal((await postChat(payingFetch, greedy.url)).status, 200);
    await payingFetch.idle();
    // The receipts said the honest charge twice; the seller claims its latest voucher whole.
    const storage = greedy.scheme.getStorage();
    for (const held of await storage.list())
      await storage.updateChannel(held.channelId, (current) =>
        current ? { ...current, chargedCumulativeAmount: current.signedMaxClaimable } : current,
      );
    await greedy.claimAndSettle();
    const store = await payingFetch.spendStore();
    const [channel] = await store.channels({ payer: buyer.address });
    assert.ok(channel);
    const { totalClaimed } = await h.channelOf(channel.channelId);
    assert.equal(totalClaimed, greedy.honestChargeAtomic + 1000n, "the latest voucher claimed whole");
    await postChat(payingFetch, greedy.url);
    await payingFetch.idle();
    const excessAtomic = totalClaimed - 2n * greedy.honestChargeAtomic;
    assert.deepEqual(
      log.of("overcharge").map((event) => [event.reason, event.chargedAtomic]),
      [["above_receipts", excessAtomic]],
    );
    assert.ok(
      (await store.daySpend()).countedAtomic >= totalClaimed,
      "every cap counts what the seller claimed",
    );
  });

  test("a seller that says the channel is short when it is not gets no second deposit: the buyer reads the balance on chain", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    let offer: Record<string, unknown> | undefined;
    let claimedShort = 0;
    // The seller answers every voucher after the first request "above the balance", naming a balance of 0.
    const shortClaiming: typeof fetch = async (input, init) => {
      const signature = new Headers(init?.headers).get(PAYMENT_SIGNATURE_HEADER);
      const payment = signature
        ? (JSON.parse(Buffer.from(signature, "base64").toString()) as {
            payload: { type: string; voucher: { channelId: string; maxClaimableAmount: string } };
          })
        : undefined;
      if (payment?.payload.type === "voucher" && offer) {
        claimedShort += 1;
        const { voucher } = payment.payload;
        const required = {
          x402Version: 2,
          error: "invalid_batch_settlement_evm_cumulative_exceeds_balance",
          resource: { url: String(input) },
          accepts: [
            {
              ...offer,
              extra: {
                ...(offer.extra as object),
                channelState: { channelId: voucher.channelId, balance: "0", totalClaimed: "0" },
              },
            },
          ],
        };
        return new Response("{}", {
          status: 402,
          headers: { [PAYMENT_REQUIRED_HEADER]: encodePaymentRequiredHeader(required as never) },
        });
      }
      const response = await fetch(input, init);
      if (response.status === 402 && !signature) {
        const decoded = decodePaymentRequiredHeader(response.headers.get(PAYMENT_REQUIRED_HEADER));
        if (decoded.ok) offer = decoded.paymentRequired.accepts[0] as unknown as Record<string, unknown>;
      }
      return response;
    };
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey, fetch: shortClaiming });
    // The first request deposits (its payload is a deposit, served); the next ones meet the lie.
    const statuses: number[] = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await postChat(payingFetch, seller.url)).status);
    await payingFetch.idle();
    assert.deepEqual(statuses, [200, 402, 402]);
    assert.ok(claimedShort >= 2);
    const [channel] = await (await payingFetch.spendStore()).channels({ payer: buyer.address });
    assert.equal(channel?.deposits, 1, "one deposit: the chain says the channel holds enough");
  });

  test("a buyer without an RPC tops a channel up only by what its own record says is missing: a seller saying the channel is short at every request gets no deposit past maxEscrow", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    let claimedShort = 0;
    // Every voucher carrying no deposit is answered "above the balance", naming a balance of 1; a deposit
    // (the opening, or a top-up) reaches the seller, which takes it into the channel and serves.
    const shortClaiming: typeof fetch = async (input, init) => {
      const signature = new Headers(init?.headers).get(PAYMENT_SIGNATURE_HEADER);
      const payment = signature
        ? (JSON.parse(Buffer.from(signature, "base64").toString()) as {
            accepted: Record<string, unknown>;
            payload: { type: string; voucher: { channelId: string } };
          })
        : undefined;
      if (payment?.payload.type === "voucher") {
        claimedShort += 1;
        const required = {
          x402Version: 2,
          error: "invalid_batch_settlement_evm_cumulative_exceeds_balance",
          resource: { url: String(input) },
          accepts: [
            {
              ...payment.accepted,
              extra: {
                ...(payment.accepted.extra as object),
                channelState: {
                  channelId: payment.payload.voucher.channelId,
                  balance: "1",
                  totalClaimed: "0",
                },
              },
            },
          ],
        };
        return new Response("{}", {
          status: 402,
          headers: { [PAYMENT_REQUIRED_HEADER]: encodePaymentRequiredHeader(required as never) },
        });
      }
      return fetch(input, init);
    };
    // maxEscrow $0.01 (10,000): the opening deposit (the seller's hint, 10 × the request's maximum) fills it.
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: undefined,
      fetch: shortClaiming,
      policy: { maxEscrow: 10_000n },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await postChat(payingFetch, seller.url)).status);
    await payingFetch.idle();
    assert.ok(claimedShort >= 3, `the seller claimed the channel short ${claimedShort} times`);
    const [channel] = await (await payingFetch.spendStore()).channels({ payer: buyer.address });
    assert.ok(channel);
    const onChain = await h.channelOf(channel.channelId);
    assert.equal(onChain.balance, 10_000n, "the channel holds the opening deposit alone, within maxEscrow");
    assert.equal(channel.deposits, 1, "one deposit: the buyer's record says the channel holds enough");
    assert.deepEqual(statuses, [200, 402, 402, 402]);
  });

  test("a buyer without an RPC whose deposit a seller settles and answers with a 402 takes it as made: no deposit follows on the seller's answer", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const { fetch: taking, depositsTaken } = depositTakingSeller();
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: undefined,
      fetch: taking,
      policy: { maxEscrow: 10_000n },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await postChat(payingFetch, seller.url)).status);
    await payingFetch.idle();
    assert.deepEqual(statuses, [402, 402, 402, 402]);
    const [channel] = await (await payingFetch.spendStore()).channels({ payer: buyer.address });
    assert.ok(channel);
    assert.equal(depositsTaken(), 1, "one deposit signed");
    assert.equal(
      (await h.channelOf(channel.channelId)).balance,
      10_000n,
      "the channel holds one deposit, within maxEscrow",
    );
    assert.equal(await h.devnet.usdcBalance(buyer.address), 100_000_000n - 10_000n);
  });

  test("a buyer without an RPC whose deposit a seller settles and then drops the connection takes it as made: no deposit follows", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const settledSignatures = new Set<string>();
    // A paid request's connection is reset with no answer, its deposit settled first (once: the resend carries the same).
    const dropping: typeof fetch = async (input, init) => {
      const paid = signedPaymentOf(init);
      if (!paid) return fetch(input, init);
      const { signature, payment } = paid;
      if (payment.payload.type === "deposit" && !settledSignatures.has(signature)) {
        settledSignatures.add(signature);
        const settled = await h.facilitator.settle(payment as never, payment.accepted as never);
        assert.ok(settled.success, String(settled.errorReason));
      }
      throw Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNRESET" } });
    };
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: undefined,
      fetch: dropping,
      policy: { maxEscrow: 10_000n },
    });
    for (let i = 0; i < 4; i += 1) await assert.rejects(postChat(payingFetch, seller.url), /fetch failed/);
    await payingFetch.idle();
    const [channel] = await (await payingFetch.spendStore()).channels({ payer: buyer.address });
    assert.ok(channel);
    assert.equal(settledSignatures.size, 1, "one deposit signed");
    assert.equal(
      (await h.channelOf(channel.channelId)).balance,
      10_000n,
      "the channel holds one deposit, within maxEscrow",
    );
  });

  test("a buyer with an RPC whose deposit a seller settles and answers with a 402 reads the channel on chain before depositing again: none follows", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const { fetch: taking, depositsTaken } = depositTakingSeller();
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      fetch: taking,
      policy: { maxEscrow: 50_000n },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await postChat(payingFetch, seller.url)).status);
    await payingFetch.idle();
    assert.deepEqual(statuses, [402, 402, 402, 402]);
    const [channel] = await (await payingFetch.spendStore()).channels({ payer: buyer.address });
    assert.ok(channel);
    assert.equal(depositsTaken(), 1, "one deposit signed");
    assert.equal(
      (await h.channelOf(channel.channelId)).balance,
      10_000n,
      "the channel holds the one deposit it needs",
    );
    assert.equal(await h.devnet.usdcBalance(buyer.address), 100_000_000n - 10_000n);
  });

  test("a channel offer without prices of its own is checked at the prices of the upto offer beside it", async () => {
    const greedy = await h.seller({ overchargeAtomic: 100n, uptoOffer: true, pricedOn: "upto" });
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const log = eventLog();
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      onEvent: log.onEvent,
      policy: { channels: "prefer" },
    });
    for (let i = 0; i < 2; i += 1) assert.equal((await postChat(payingFetch, greedy.url)).status, 200);
    await payingFetch.idle();
    assert.deepEqual(
      log.of("authorized").map((event) => event.scheme),
      ["batch-settlement", "batch-settlement"],
    );
    const overcharges = log.of("overcharge");
    assert.equal(overcharges.length, 2);
    for (const overcharge of overcharges) {
      assert.equal(overcharge.reason, "above_usage");
      assert.equal(overcharge.justifiedAtomic, greedy.honestChargeAtomic);
    }
  });
});

describe("getting the remainder back", () => {
  test("a cooperative refund returns what was not charged to the wallet", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey });
    for (let i = 0; i < 3; i += 1) assert.equal((await postChat(payingFetch, seller.url)).status, 200);
    await payingFetch.idle();
    const store = await payingFetch.spendStore();
    const outcomes = await refundChannels({
      store,
      account: privateKeyToAccount(buyer.privateKey),
      origin: providerOrigin(seller.url),
      rpcUrl: h.devnet.rpcUrl,
    });
    assert.equal(outcomes.length, 1);
    assert.equal(
      outcomes[0]?.kind,
      "refunded",
      JSON.stringify(outcomes[0], (_k, v) => (typeof v === "bigint" ? `${v}` : v)),
    );
    assert.equal(await h.devnet.usdcBalance(buyer.address), 10_000_000n - 3n * seller.honestChargeAtomic);
    const [channel] = await store.channels({ payer: buyer.address });
    // The record keeps the charged total the channel's next voucher builds on; nothing is left in it.
    const charged = (3n * seller.honestChargeAtomic).toString();
    assert.deepEqual(
      channel?.context,
      { chargedCumulativeAmount: charged, balance: charged, totalClaimed: charged },
      "the channel record holds only what was charged",
    );
    const again = await refundChannels({
      store,
      account: privateKeyToAccount(buyer.privateKey),
      origin: providerOrigin(seller.url),
      rpcUrl: h.devnet.rpcUrl,
    });
    assert.equal(again[0]?.kind, "nothing_to_refund");
  });

  test("a seller that claims at the refund more than its receipts charged is disputed for the difference, which every cap counts", async () => {
    const greedy = await h.seller();
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey });
    for (let i = 0; i < 3; i += 1) assert.equal((await postChat(payingFetch, greedy.url)).status, 200);
    await payingFetch.idle();
    const store = await payingFetch.spendStore();
    assert.equal((await store.daySpend()).countedAtomic, 3n * greedy.honestChargeAtomic);
    // The seller's receipts said the honest charge each time; at the refund it claims its latest voucher whole.
    const storage = greedy.scheme.getStorage();
    let signedAtomic = 0n;
    for (const held of await storage.list()) {
      signedAtomic = BigInt(held.signedMaxClaimable);
      await storage.updateChannel(held.channelId, (current) =>
        current ? { ...current, chargedCumulativeAmount: current.signedMaxClaimable } : current,
      );
    }
    assert.equal(signedAtomic, 2n * greedy.honestChargeAtomic + 1000n);
    const outcomes = await refundChannels({
      store,
      account: privateKeyToAccount(buyer.privateKey),
      origin: providerOrigin(greedy.url),
      rpcUrl: h.devnet.rpcUrl,
    });
    assert.equal(outcomes[0]?.kind, "refunded");
    const takenAtomic = 10_000_000n - (await h.devnet.usdcBalance(buyer.address));
    assert.equal(takenAtomic, signedAtomic, "the seller took its latest voucher whole");
    assert.equal((await store.daySpend()).countedAtomic, takenAtomic, "every cap counts what it took");
    const disputes = await store.disputes({ status: "open" });
    assert.deepEqual(
      disputes.map((dispute) => [dispute.reason, dispute.chargedAtomic]),
      [["above_receipts", takenAtomic - 3n * greedy.honestChargeAtomic]],
    );
  });

  test("a seller that answers a refund as done while the channel still holds the remainder is not believed: the payer starts its withdrawal", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey });
    assert.equal((await postChat(payingFetch, seller.url)).status, 200);
    await payingFetch.idle();
    const store = await payingFetch.spendStore();
    const [channel] = await store.channels({ payer: buyer.address });
    assert.ok(channel?.context);
    const heldAtomic = channel.depositedAtomic - seller.honestChargeAtomic;
    // It forwards the probe to the seller, and answers the signed refund with a settlement that never happened.
    const liar = createServer((request, response) => {
      if (!request.headers[PAYMENT_SIGNATURE_HEADER.toLowerCase()]) {
        fetch(`${seller.url}/v1/chat/completions`).then((probe) => {
          response.writeHead(probe.status, {
            [PAYMENT_REQUIRED_HEADER]: probe.headers.get(PAYMENT_REQUIRED_HEADER) ?? "",
          });
          response.end();
        });
        return;
      }
      response.writeHead(200, {
        "content-type": "application/json",
        [PAYMENT_RESPONSE_HEADER]: encodePaymentResponseHeader({
          success: true,
          transaction: `0x${"ab".repeat(32)}`,
          network: h.devnet.network,
          payer: buyer.address,
          amount: heldAtomic.toString(),
        }),
      });
      response.end("{}");
    });
    await new Promise<void>((resolve) => liar.listen(0, "127.0.0.1", resolve));
    try {
      const outcomes = await refundChannels({
        store,
        account: privateKeyToAccount(buyer.privateKey),
        origin: providerOrigin(seller.url),
        rpcUrl: h.devnet.rpcUrl,
        refundUrl: `http://127.0.0.1:${(liar.address() as AddressInfo).port}/v1/chat/completions`,
      });
      const [outcome] = outcomes;
      assert.equal(
        outcome?.kind,
        "withdrawal_started",
        JSON.stringify(outcome, (_k, v) => (typeof v === "bigint" ? `${v}` : v)),
      );
      // Nothing was claimed yet: the whole deposit is withdrawn, and the seller may claim its voucher meanwhile.
      assert.equal(
        outcome.amountAtomic,
        channel.depositedAtomic,
        "the payer withdraws what the chain holds unclaimed",
      );
      assert.match(
        outcome.because,
        /answered that it refunded \d+ \(transaction 0x(ab)+\), but the channel still holds \d+ unclaimed/,
      );
      const [kept] = await store.channels({ payer: buyer.address });
      assert.deepEqual(kept?.context, channel.context, "the channel's record is as before the refund");
    } finally {
      await new Promise<void>((resolve) => liar.close(() => resolve()));
    }
    const [pending] = await refundChannels({
      store,
      account: privateKeyToAccount(buyer.privateKey),
      origin: providerOrigin(seller.url),
      rpcUrl: h.devnet.rpcUrl,
    });
    assert.equal(pending?.kind, "withdrawal_pending");
    assert.equal(pending.amountAtomic, channel.depositedAtomic);
  });

  test("a channel refunded and paid into again is counted once against maxDeposit: what it holds is read on chain", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const policy = { maxDeposit: 2_000n };
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey, channelPoolSize: 1, policy });
    const refund = () =>
      refundChannels({
        store,
        account: privateKeyToAccount(buyer.privateKey),
        origin: providerOrigin(seller.url),
        rpcUrl: h.devnet.rpcUrl,
      });
    const store = await payingFetch.spendStore();
    // Each round spends past the first deposit (a top-up), then takes the rest back.
    for (let round = 0; round < 3; round += 1) {
      for (let i = 0; i < 4; i += 1)
        assert.equal((await postChat(payingFetch, seller.url)).status, 200, `round ${round}, request ${i}`);
      await payingFetch.idle();
      assert.equal((await refund())[0]?.kind, "refunded", `round ${round}`);
    }
    const [channel] = await store.channels({ payer: buyer.address });
    assert.ok(
      (channel?.deposits ?? 0) >= 6,
      `one channel, deposits and top-ups each round: ${channel?.deposits}`,
    );
  });
});

describe("a fresh wallet", () => {
  test("pays through an ERC-3009 deposit with no approval and no native gas, where upto is offered too", async () => {
    const both = await h.seller({ uptoOffer: true, assetTransferMethods: ["permit2", "eip3009"] });
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    assert.equal(await h.nativeBalance(buyer.address), 0n);
    const log = eventLog();
    // `fallback`: upto unless the wallet cannot pay through Permit2; this one has no allowance.
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      onEvent: log.onEvent,
      policy: { channels: "fallback" },
    });
    for (let i = 0; i < 3; i += 1) {
      const answer = await postChat(payingFetch, both.url);
      assert.equal(
        answer.status,
        200,
        JSON.stringify(log.events, (_k, v) => (typeof v === "bigint" ? `${v}` : v)),
      );
    }
    await payingFetch.idle();
    assert.deepEqual(
      log.of("authorized").map((event) => event.scheme),
      ["batch-settlement", "batch-settlement", "batch-settlement"],
    );
    assert.equal(await h.nativeBalance(buyer.address), 0n, "no native gas spent or needed");
    assert.equal(await h.permit2Allowance(buyer.address), 0n, "no approval");
    const [channel] = await (await payingFetch.spendStore()).channels({ payer: buyer.address });
    assert.ok(channel && channel.depositedAtomic > 0n);
    assert.deepEqual(await h.channelOf(channel.channelId), {
      balance: channel.depositedAtomic,
      totalClaimed: 0n,
    });
    assert.equal(await h.devnet.usdcBalance(buyer.address), 10_000_000n - channel.depositedAtomic);
  });

  test("a wallet with Permit2 allowance pays upto under channels: fallback", async () => {
    const both = await h.seller({ uptoOffer: true });
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const log = eventLog();
    const payingFetch = h.payingFetch({
      privateKey: buyer.privateKey,
      onEvent: log.onEvent,
      policy: { channels: "fallback" },
    });
    const answer = await postChat(payingFetch, both.url);
    assert.equal(answer.status, 200, answer.body);
    assert.deepEqual(
      log.of("authorized").map((event) => event.scheme),
      ["upto"],
    );
  });
});

// Last: it moves the chain's clock past the withdrawal delay, ahead of the wall clock.
describe("the payer's own exit", () => {
  test("when the seller does not answer, the withdrawal starts on chain and finishes after its delay", async () => {
    const gone = await h.seller();
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const payingFetch = h.payingFetch({ privateKey: buyer.privateKey });
    assert.equal((await postChat(payingFetch, gone.url)).status, 200);
    await payingFetch.idle();
    await gone.claimAndSettle();
    await gone.close();
    const store = await payingFetch.spendStore();
    const refund = () =>
      refundChannels({
        store,
        account: privateKeyToAccount(buyer.privateKey),
        origin: providerOrigin(gone.url),
        rpcUrl: h.devnet.rpcUrl,
      });
    const [started] = await refund();
    assert.equal(
      started?.kind,
      "withdrawal_started",
      JSON.stringify(started, (_k, v) => (typeof v === "bigint" ? `${v}` : v)),
    );
    const [pending] = await refund();
    assert.equal(pending?.kind, "withdrawal_pending");
    await h.net.testClient.increaseTime({ seconds: 901 });
    await h.net.testClient.mine({ blocks: 1 });
    const [finished] = await refund();
    assert.equal(
      finished?.kind,
      "withdrawn",
      JSON.stringify(finished, (_k, v) => (typeof v === "bigint" ? `${v}` : v)),
    );
    assert.equal(await h.devnet.usdcBalance(buyer.address), 10_000_000n - gone.honestChargeAtomic);
  });
});
