import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  createAuthorizationChecker,
  createPayingFetch,
  openSpendStore,
  type PayingFetch,
  resolveLapsedReservations,
  type SpendStore,
} from "../src/buyer/index.js";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { createFacilitator, serveFacilitator, type TollgateFacilitator } from "../src/facilitator/index.js";
import { createMcpToolPayer } from "../src/mcp/index.js";
import { costAtomic } from "../src/pricing/index.js";
import { decodePaymentRequiredHeader } from "../src/protocol/index.js";
import { eventLog } from "./support/buyerFixtures.js";
import { withChainPast } from "./support/chainTime.js";
import { dishonestToolServer, startDishonestSeller } from "./support/dishonestSeller.js";
import { TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";
import { startOfficialUptoSeller } from "./support/officialUptoSeller.js";

const prices = { inputPerMTokAtomic: 3_000_000n, outputPerMTokAtomic: 15_000_000n, fixedFeeAtomic: 0n };
const usage = { promptTokens: 9, completionTokens: 20 };
const honestCharge = costAtomic(usage, { ...prices, maxOutputTokens: 1 });

let devnet: Devnet;
let facilitator: TollgateFacilitator;
let store: SpendStore;
const closers: Array<() => Promise<void>> = [];
const opened: PayingFetch[] = [];

before(async () => {
  devnet = await startDevnet({ buyers: 3 });
  facilitator = createFacilitator({
    rpcUrl: devnet.rpcUrl,
    privateKey: devnet.accounts.facilitator.privateKey,
    network: devnet.network,
    pollingIntervalMs: 20,
  });
  store = await openSpendStore({ dataDir: "memory://" });
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  for (const close of closers.reverse()) await close();
  await store?.close();
  await devnet?.stop();
});

function buyerFetch(buyer: number, options: Partial<Parameters<typeof createPayingFetch>[0]> = {}) {
  const payingFetch = createPayingFetch({
    privateKey: devnet.accounts.buyers[buyer]!.privateKey,
    store,
    ...options,
  });
  opened.push(payingFetch);
  return payingFetch;
}

const chat = (payingFetch: typeof fetch, url: string, extra: Record<string, unknown> = {}) =>
  payingFetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "any-model",
      messages: [{ role: "user", content: "hello there" }],
      max_tokens: 100,
      ...extra,
    }),
  });

/** A spend store of the test's own, so that its caps and rows see no other test's payments. */
/** A seller at the test's prices and usage, cheating as `options` say; closed after the tests. */
/** Asserts that the test's chat to `url` is refused by the listedPrices rule, in words matching `words`. */
async function refusedByListing(payingFetch: typeof fetch, url: string, words: RegExp): Promise<void> {
  await assert.rejects(chat(payingFetch, url), (error: unknown) => {
    assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"), String(error));
    assert.equal(error.details.rule, "listedPrices");
    assert.match(error.message, words);
    return true;
  });
}

/** Lists a seller's models, then pays its chat: served, and settled at `chargeAtomic`. */
async function paidAsListed(
  payingFetch: ReturnType<typeof buyerFetch>,
  seller: { url: string; settled: Array<{ chargeAtomic: bigint }> },
  chargeAtomic: bigint,
): Promise<void> {
  await payingFetch.discover(seller.url);
  const paid = await chat(payingFetch, seller.url);
  assert.equal(paid.status, 200);
  await paid.arrayBuffer();
  assert.equal(seller.settled[0]?.chargeAtomic, chargeAtomic);
}

/** The amount a seller's 402 asks for the test's chat, read from an unpaid request. */
async function exactAmountOf(seller: { url: string }): Promise<bigint> {
  const response = await chat(fetch, seller.url);
  assert.equal(response.status, 402);
  const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
  assert.ok(decoded.ok);
  return BigInt(decoded.paymentRequired.accepts[0]!.amount);
}

async function dishonestSeller(options: Partial<Parameters<typeof startDishonestSeller>[0]> = {}) {
  const seller = await startDishonestSeller({
    facilitator,
    asset: devnet.contracts.usdc,
    payTo: devnet.accounts.payTo.address,
    prices,
    usage,
    ...options,
  });
  closers.push(seller.close);
  return seller;
}

async function ownStore(): Promise<SpendStore> {
  const own = await openSpendStore({ dataDir: "memory://" });
  closers.push(() => own.close());
  return own;
}

/** An MCP client connected to `server` in process. */
async function connectTo(server: McpServer): Promise<Client> {
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  const client = new Client({ name: "test-agent", version: "1.0.0" });
  await client.connect(clientTransport);
  closers.push(() => client.close());
  return client;
}

/** What the chain says of a reservation's authorization once its deadline has passed. */
async function resolvedAfterDeadline(own: SpendStore, paymentId: string) {
  const row = await own.reservation(paymentId);
  assert.ok(row?.deadline, "the authorization's deadline is recorded");
  const later = new Date(row.deadline.getTime() + 120_000);
  await withChainPast(devnet, row.deadline, () =>
    resolveLapsedReservations({
      store: own,
      checker: createAuthorizationChecker(devnet.rpcUrl),
      now: later,
    }),
  );
  return own.reservation(paymentId);
}

describe("sellers other than Tollgate's gateway", () => {
  test("pays a seller built only with the official @x402/hono middleware; the usage, not the maximum, is settled", async () => {
    const served = await serveFacilitator({ facilitator, token: TEST_FACILITATOR_TOKEN, port: 0 });
    closers.push(served.close);
    const maxAtomic = 50_000n;
    const seller = await startOfficialUptoSeller({
      facilitatorUrl: served.url,
      network: devnet.network,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      maxAtomic,
      prices,
      usage,
    });
    closers.push(seller.close);
    const buyer = devnet.accounts.buyers[0]!;
    const log = eventLog();
    const payingFetch = buyerFetch(0, { onEvent: log.onEvent, policy: { perCall: "$0.10" } });
    const balanceBefore = await devnet.usdcBalance(buyer.address);
    const response = await chat(payingFetch, seller.url);
    assert.equal(response.status, 200);
    const completion = (await response.json()) as { usage: { completion_tokens: number } };
    assert.equal(completion.usage.completion_tokens, usage.completionTokens);
    await payingFetch.idle();
    const [receipt] = log.of("receipt");
    assert.equal(receipt?.maxAtomic, maxAtomic);
    assert.equal(receipt?.chargedAtomic, seller.chargeAtomic);
    assert.ok(seller.chargeAtomic < maxAtomic);
    assert.equal(await devnet.usdcBalance(buyer.address), balanceBefore - seller.chargeAtomic);
    const row = await (await payingFetch.spendStore()).reservation(receipt!.paymentId);
    assert.equal(row?.status, "settled");
    assert.equal(row?.countedAtomic, seller.chargeAtomic);
  });

  test("flags a seller that settles more than its own reported usage justifies", async () => {
    const seller = await dishonestSeller({ overchargeAtomic: 500n });
    const log = eventLog();
    const payingFetch = buyerFetch(1, { onEvent: log.onEvent });
    const response = await chat(payingFetch, seller.url);
    assert.equal(response.status, 200);
    await response.json();
    await payingFetch.idle();

    const [overcharge] = log.of("overcharge");
    assert.ok(overcharge, "an overcharge event");
    assert.equal(overcharge.reason, "above_usage");
    assert.equal(overcharge.chargedAtomic, honestCharge + 500n);
    assert.equal(overcharge.justifiedAtomic, honestCharge);
    assert.equal(seller.settled[0]?.chargeAtomic, honestCharge + 500n, "the seller really took it on chain");
    const disputes = (await store.disputes({ status: "open" })).filter(
      (dispute) => dispute.origin === seller.url,
    );
    assert.equal(disputes.length, 1);
    assert.equal(disputes[0]?.reason, "above_usage");
    assert.equal(disputes[0]?.chargedAtomic, honestCharge + 500n);
    assert.equal(disputes[0]?.transaction, overcharge.transaction);
  });

  test("an honest charge from the same kind of seller is not flagged", async () => {
    const seller = await dishonestSeller();
    const log = eventLog();
    const payingFetch = buyerFetch(1, { onEvent: log.onEvent });
    await (await chat(payingFetch, seller.url)).json();
    await payingFetch.idle();
    assert.equal(log.of("receipt")[0]?.chargedAtomic, honestCharge);
    assert.equal(log.of("overcharge").length, 0);
  });

  test('a stream whose seller counted the prompt itself is held to the buyer\'s own count: 8 tokens for "hello", not the 20 of the old count', async () => {
    const hello = { messages: [{ role: "user", content: "hello" }], stream: true };
    const charged = async (promptTokens: number) => {
      const seller = await dishonestSeller({
        usage: { promptTokens, completionTokens: 1 },
        promptCountedBy: "gateway",
      });
      const log = eventLog();
      const payingFetch = buyerFetch(2, { onEvent: log.onEvent });
      await (await chat(payingFetch, seller.url, hello)).text();
      await payingFetch.idle();
      return { receipt: log.of("receipt")[0], overcharges: log.of("overcharge") };
    };
    const honest = await charged(8);
    assert.equal(
      honest.receipt?.chargedAtomic,
      costAtomic({ promptTokens: 8, completionTokens: 1 }, { ...prices, maxOutputTokens: 1 }),
    );
    assert.equal(honest.overcharges.length, 0, "OpenAI's own count is never flagged");
    const inflated = await charged(20);
    const [overcharge] = inflated.overcharges;
    assert.equal(overcharge?.reason, "usage_above_bound");
    assert.equal(overcharge?.justifiedAtomic, honest.receipt?.chargedAtomic);
  });

  test("a stream whose receipt event charges more usage than the stream's own usage chunk reported is flagged", async () => {
    const inflated = { promptTokens: usage.promptTokens, completionTokens: 60 };
    const seller = await dishonestSeller({ usage: inflated, streamUsage: usage });
    const log = eventLog();
    const payingFetch = buyerFetch(1, { onEvent: log.onEvent });
    await (await chat(payingFetch, seller.url, { stream: true })).text();
    await payingFetch.idle();
    const charged = costAtomic(inflated, { ...prices, maxOutputTokens: 1 });
    assert.equal(log.of("receipt")[0]?.chargedAtomic, charged, "the seller took what its receipt says");
    const [overcharge] = log.of("overcharge");
    assert.equal(overcharge?.reason, "above_usage");
    assert.equal(overcharge?.chargedAtomic, charged);
    assert.equal(overcharge?.justifiedAtomic, honestCharge, "what the stream's own usage justifies");
    const disputes = (await store.disputes({ status: "open" })).filter(
      (dispute) => dispute.origin === seller.url,
    );
    assert.deepEqual(
      disputes.map((dispute) => [dispute.reason, dispute.chargedAtomic]),
      [["above_usage", charged]],
    );
  });

  test("a stream whose usage chunk agrees with its receipt event is not flagged", async () => {
    const seller = await dishonestSeller({ streamUsage: usage });
    const log = eventLog();
    const payingFetch = buyerFetch(1, { onEvent: log.onEvent });
    await (await chat(payingFetch, seller.url, { stream: true })).text();
    await payingFetch.idle();
    assert.equal(log.of("receipt")[0]?.chargedAtomic, honestCharge);
    assert.equal(log.of("overcharge").length, 0);
  });

  test("refuses a maximum far above the expected cost before signing (maxOverExpected)", async () => {
    const seller = await dishonestSeller({ inflateMaximum: 10n });
    const buyer = devnet.accounts.buyers[2]!;
    const balanceBefore = await devnet.usdcBalance(buyer.address);
    const log = eventLog();
    const payingFetch = buyerFetch(2, { onEvent: log.onEvent, policy: { maxOverExpected: 3 } });
    await assert.rejects(chat(payingFetch, seller.url), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"));
      assert.equal(error.details.rule, "maxOverExpected");
      const expected = error.details.expectedAtomic as bigint;
      assert.equal(error.details.askedAtomic, expected * 10n);
      assert.equal(error.details.limitAtomic, expected * 3n);
      return true;
    });
    assert.equal(log.of("authorized").length, 0);
    assert.equal(seller.settled.length, 0);
    assert.equal(await devnet.usdcBalance(buyer.address), balanceBefore);
  });

  test("payTo allowlist and confirmAbove refuse before signing; a confirmation lets the payment through", async () => {
    const seller = await dishonestSeller();
    const wrongPayTo = buyerFetch(2, {
      policy: { providers: { [seller.url]: { payTo: ["0x000000000000000000000000000000000000dEaD"] } } },
    });
    await assert.rejects(chat(wrongPayTo, seller.url), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"));
      return error.details.rule === "providers.payTo";
    });
    const unconfirmed = buyerFetch(2, { policy: { confirmAbove: "1" } });
    await assert.rejects(chat(unconfirmed, seller.url), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"));
      return error.details.rule === "confirmAbove";
    });
    const asked: bigint[] = [];
    const confirmed = buyerFetch(2, {
      policy: { confirmAbove: "1" },
      confirm: (request) => {
        asked.push(request.maxAtomic);
        return true;
      },
    });
    const response = await chat(confirmed, seller.url);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    assert.equal(asked.length, 1);
    assert.equal(seller.settled.length, 1, "only the confirmed payment was settled");
  });
});

describe("a seller that misreports or keeps a payment", () => {
  test("a JSON answer whose receipt says the settlement failed keeps the maximum reserved until the deadline", async () => {
    const seller = await dishonestSeller({ cheat: "pending-receipt" });
    const own = await ownStore();
    const log = eventLog();
    const payingFetch = buyerFetch(0, { store: own, onEvent: log.onEvent });
    const response = await chat(payingFetch, seller.url);
    assert.equal(response.status, 200);
    await response.json();
    await payingFetch.idle();

    const [receipt] = log.of("receipt");
    assert.equal(receipt?.success, false);
    const row = await own.reservation(receipt!.paymentId);
    assert.equal(row?.status, "reserved", "not settled at 0");
    assert.equal(row?.countedAtomic, receipt!.maxAtomic, "the maximum stays counted");
    assert.match(row?.note ?? "", /settlement failed: settlement_pending/);
    // The seller settles once it has answered: after the deadline the chain says so.
    while (seller.settled.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const resolved = await resolvedAfterDeadline(own, receipt!.paymentId);
    assert.equal(resolved?.status, "settled");
    assert.equal(resolved?.countedAtomic, receipt!.maxAtomic);
  });

  test("an exact payment is booked at its signed price whatever the receipt states, and a receipt stating another amount is flagged", async () => {
    const seller = await dishonestSeller({ scheme: "exact", statedChargeAtomic: 0n });
    const buyer = devnet.accounts.buyers[0]!;
    for (const stream of [false, true]) {
      const own = await ownStore();
      const log = eventLog();
      const payingFetch = buyerFetch(0, { store: own, onEvent: log.onEvent });
      const balanceBefore = await devnet.usdcBalance(buyer.address);
      const response = await chat(payingFetch, seller.url, { stream });
      assert.equal(response.status, 200);
      await response.text();
      await payingFetch.idle();

      const [authorized] = log.of("authorized");
      assert.equal(authorized?.scheme, "exact");
      const priceAtomic = authorized!.maxAtomic;
      assert.equal(await devnet.usdcBalance(buyer.address), balanceBefore - priceAtomic, "the price moved");
      const [receipt] = log.of("receipt");
      assert.equal(receipt?.source, stream ? "stream" : "header");
      assert.equal(receipt?.chargedAtomic, priceAtomic);
      assert.equal((await own.reservation(receipt!.paymentId))?.countedAtomic, priceAtomic);
      assert.equal((await own.daySpend()).countedAtomic, priceAtomic);
      const [overcharge] = log.of("overcharge");
      assert.equal(overcharge?.reason, "misstated_charge");
      const [dispute] = await own.disputes({ status: "open" });
      assert.equal(dispute?.reason, "misstated_charge");
      assert.equal(dispute?.chargedAtomic, priceAtomic);
      assert.equal(dispute?.details.statedAtomic, "0");
    }
  });

  test("a charge stated above the signed maximum counts as the maximum, and is flagged", async () => {
    const stated = 10n ** 30n;
    const seller = await dishonestSeller({ statedChargeAtomic: stated });
    const own = await ownStore();
    const log = eventLog();
    const payingFetch = buyerFetch(1, { store: own, onEvent: log.onEvent });
    await (await chat(payingFetch, seller.url)).json();
    await payingFetch.idle();

    const [receipt] = log.of("receipt");
    assert.equal(receipt?.chargedAtomic, stated);
    const row = await own.reservation(receipt!.paymentId);
    assert.equal(row?.status, "settled");
    assert.equal(row?.countedAtomic, receipt!.maxAtomic, "no more than the signed maximum can move");
    assert.equal((await own.daySpend()).countedAtomic, receipt!.maxAtomic);
    assert.equal(log.of("overcharge")[0]?.reason, "above_maximum");
  });

  test("a 402 reached through a redirect to another origin is not paid under the first origin's caps", async () => {
    const seller = await dishonestSeller();
    // Another origin that sends every request on to the seller (302: a GET of the same path, which
    // the seller answers with its 402 as to any unpaid request).
    const redirector = createServer((request, response) => {
      response.writeHead(302, { location: `${seller.url}${request.url}` });
      response.end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, "127.0.0.1", resolve));
    closers.push(() => new Promise<void>((resolve) => redirector.close(() => resolve())));
    const redirectorUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
    const own = await ownStore();
    const log = eventLog();
    const payingFetch = buyerFetch(1, {
      store: own,
      onEvent: log.onEvent,
      // The seller is refused by name; the redirector is allowed.
      policy: { providers: { [seller.url]: { daily: "1" } } },
    });
    await assert.rejects(
      chat(payingFetch, redirectorUrl, { stream: false }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_PAYMENT_REQUIRED") &&
        /redirected to http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions, whose 402 is not paid/.test(
          error.shortMessage,
        ),
    );
    assert.equal(log.of("authorized").length, 0, "nothing signed");
    assert.equal(seller.settled.length, 0);
    assert.equal((await own.daySpend()).countedAtomic, 0n);
  });

  test("with an RPC, an upto receipt that states less than its transaction moved is booked at what moved, and flagged", async () => {
    // The seller takes 500 more than the usage costs on chain, and its receipt states the honest charge.
    const seller = await dishonestSeller({ overchargeAtomic: 500n, statedChargeAtomic: honestCharge });
    const buyer = devnet.accounts.buyers[2]!;
    for (const stream of [false, true]) {
      for (const rpcUrl of [undefined, devnet.rpcUrl]) {
        const own = await ownStore();
        const log = eventLog();
        const payingFetch = buyerFetch(2, { store: own, onEvent: log.onEvent, rpcUrl });
        const balanceBefore = await devnet.usdcBalance(buyer.address);
        await (await chat(payingFetch, seller.url, { stream })).text();
        await payingFetch.idle();

        const taken = balanceBefore - (await devnet.usdcBalance(buyer.address));
        assert.equal(taken, honestCharge + 500n, "the seller took 500 more than it stated");
        const [receipt] = log.of("receipt");
        assert.equal(receipt?.chargedAtomic, honestCharge, "the receipt states the honest charge");
        const row = await own.reservation(receipt!.paymentId);
        const day = await own.daySpend();
        if (!rpcUrl) {
          // Without a chain to read, the receipt's word is all the buyer has.
          assert.equal(row?.countedAtomic, honestCharge);
          assert.equal(log.of("overcharge").length, 0);
          continue;
        }
        assert.equal(row?.status, "settled");
        assert.equal(row?.countedAtomic, taken, `what moved counts against the caps (stream ${stream})`);
        assert.equal(day.countedAtomic, taken);
        const [overcharge] = log.of("overcharge");
        assert.equal(overcharge?.reason, "misstated_charge");
        assert.equal(overcharge?.chargedAtomic, taken);
        assert.equal(overcharge?.justifiedAtomic, honestCharge);
        const [dispute] = await own.disputes({ status: "open" });
        assert.equal(dispute?.reason, "misstated_charge");
        assert.equal(dispute?.chargedAtomic, taken);
        assert.equal(dispute?.transaction, seller.settled.at(-1)?.transaction);
      }
    }
  });

  test("with an RPC, a JSON answer whose body is cut or cancelled is still checked against its transaction", async () => {
    // The seller takes 500 more than the usage costs and states the honest charge in PAYMENT-RESPONSE;
    // the body after it never arrives whole: the seller cuts it, or the caller gives up on it.
    for (const ending of ["cut by the seller", "cancelled by the caller"] as const) {
      const seller = await dishonestSeller({
        overchargeAtomic: 500n,
        statedChargeAtomic: honestCharge,
        ...(ending === "cut by the seller" ? { cheat: "cut-body" as const } : {}),
      });
      const own = await ownStore();
      const log = eventLog();
      const payingFetch = buyerFetch(2, { store: own, onEvent: log.onEvent, rpcUrl: devnet.rpcUrl });
      const response = await chat(payingFetch, seller.url);
      assert.equal(response.status, 200);
      if (ending === "cut by the seller") await assert.rejects(response.text());
      else await response.body?.cancel();
      await payingFetch.idle();

      const [authorized] = log.of("authorized");
      const row = await own.reservation(authorized!.paymentId);
      const taken = seller.settled[0]!.chargeAtomic;
      assert.equal(taken, honestCharge + 500n);
      assert.equal(row?.countedAtomic, taken, `what moved counts against the caps (body ${ending})`);
      const [dispute] = await own.disputes({ status: "open" });
      assert.equal(dispute?.reason, "misstated_charge", `body ${ending}`);
      assert.equal(dispute?.chargedAtomic, taken);
      assert.equal(log.of("receipt").length, 1, "the receipt is reported");
    }
  });

  test("a JSON answer cut before its usage has its charge held to the buyer's own bounds", async () => {
    // Without an RPC: the seller asks twice what the request can cost, takes all of it, says so,
    // and cuts the body before its usage.
    const seller = await dishonestSeller({
      inflateMaximum: 2n,
      overchargeAtomic: 1_000_000n,
      cheat: "cut-body",
    });
    const own = await ownStore();
    const log = eventLog();
    const payingFetch = buyerFetch(2, { store: own, onEvent: log.onEvent });
    await assert.rejects((await chat(payingFetch, seller.url)).text());
    await payingFetch.idle();

    const taken = seller.settled[0]!.chargeAtomic;
    const [authorized] = log.of("authorized");
    assert.equal(taken, authorized!.maxAtomic, "it took the whole maximum");
    const [dispute] = await own.disputes({ status: "open" });
    assert.equal(dispute?.reason, "usage_above_bound");
    assert.equal(dispute?.chargedAtomic, taken);
    assert.equal(dispute?.justifiedAtomic, authorized!.expectedAtomic);
  });

  test("with an RPC, a JSON answer's PAYMENT-RESPONSE is checked against its transaction before its body ends", async () => {
    // The seller states the honest charge, takes 500 more, and never finishes the body.
    const seller = await dishonestSeller({
      overchargeAtomic: 500n,
      statedChargeAtomic: honestCharge,
      cheat: "hold-body",
    });
    const own = await ownStore();
    const log = eventLog();
    const payingFetch = buyerFetch(2, { store: own, onEvent: log.onEvent, rpcUrl: devnet.rpcUrl });
    const response = await chat(payingFetch, seller.url);
    assert.equal(response.status, 200);
    await payingFetch.idle();

    const [authorized] = log.of("authorized");
    const taken = seller.settled[0]!.chargeAtomic;
    assert.equal(taken, honestCharge + 500n);
    const row = await own.reservation(authorized!.paymentId);
    assert.equal(row?.countedAtomic, taken, "what moved counts against the caps while the body is awaited");
    const [dispute] = await own.disputes({ status: "open" });
    assert.equal(dispute?.reason, "misstated_charge");
    assert.equal(dispute?.chargedAtomic, taken);

    // Given up at last: the receipt is reported once, and nothing is booked or disputed again.
    await response.body?.cancel();
    await payingFetch.idle();
    assert.equal((await own.reservation(authorized!.paymentId))?.countedAtomic, taken);
    assert.equal((await own.disputes({ status: "open" })).length, 1);
    assert.equal(log.of("receipt").length, 1);
  });

  test("with an RPC, an upto receipt naming no transaction that moved it keeps the maximum reserved until the deadline, then the chain decides", async () => {
    // The seller settles the honest charge, then states a zero charge with no transaction (as for
    // a charge of nothing), or names the transaction of an earlier payment of the same buyer to it.
    let earlier: string | undefined;
    for (const reuse of [false, true]) {
      const statedTransaction = reuse ? earlier : "";
      assert.ok(statedTransaction !== undefined, "the first round settled a payment");
      const seller = await dishonestSeller({ statedChargeAtomic: 0n, statedTransaction });
      const own = await ownStore();
      const log = eventLog();
      const payingFetch = buyerFetch(2, { store: own, onEvent: log.onEvent, rpcUrl: devnet.rpcUrl });
      await (await chat(payingFetch, seller.url)).json();
      await payingFetch.idle();

      const [receipt] = log.of("receipt");
      assert.equal(receipt?.chargedAtomic, 0n);
      const row = await own.reservation(receipt!.paymentId);
      assert.equal(row?.status, "reserved", "the seller can still settle the authorization");
      assert.equal(row?.countedAtomic, receipt!.maxAtomic);
      assert.match(row?.note ?? "", /stays reserved at its maximum until its deadline/);
      assert.equal(log.of("unreceipted").length, 1);
      // It did settle: past the deadline the spent nonce keeps the maximum counted.
      const resolved = await resolvedAfterDeadline(own, receipt!.paymentId);
      assert.equal(resolved?.status, "settled");
      assert.equal(resolved?.countedAtomic, receipt!.maxAtomic);
      earlier = seller.settled[0]?.transaction;
    }
  });

  test("a 402 to the paid request keeps the authorization reserved until its deadline; one signed again in the same call counts beside it; one settled all the same is disputed", async () => {
    const seller = await dishonestSeller({ cheat: "refuse" });
    const own = await ownStore();
    const log = eventLog();
    const payingFetch = buyerFetch(1, { store: own, onEvent: log.onEvent });
    const refused = await chat(payingFetch, seller.url);
    assert.equal(refused.status, 402);
    await refused.arrayBuffer();
    const [first] = log.of("authorized");
    const maxAtomic = first!.maxAtomic;
    assert.equal(log.of("released").length, 0);
    const row = await own.reservation(first!.paymentId);
    assert.equal(row?.status, "reserved");
    assert.equal(row?.countedAtomic, maxAtomic, "the seller holds an authorization it can still settle");
    assert.equal(seller.settled[0]?.chargeAtomic, maxAtomic, "and it did");

    // Paid at once from known prices, refused, signed again: the caps count both authorizations.
    const tight = buyerFetch(1, {
      store: own,
      onEvent: log.onEvent,
      policy: { daily: ((maxAtomic * 5n) / 2n).toString() },
    });
    await tight.discover(seller.url);
    await assert.rejects(chat(tight, seller.url), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"), String(error));
      assert.equal(error.details.rule, "daily");
      assert.equal(error.details.spentAtomic, 2n * maxAtomic);
      return true;
    });
    assert.equal(log.of("authorized").length, 2);
    assert.equal(log.of("authorized")[1]?.firstRequest, true);
    assert.equal((await own.daySpend()).countedAtomic, 2n * maxAtomic);

    const resolved = await resolvedAfterDeadline(own, first!.paymentId);
    assert.equal(resolved?.status, "settled", "the chain shows it used");
    assert.equal(resolved?.countedAtomic, maxAtomic);
    // It answered the payment with a refusal and served nothing, yet took it: disputed, in full.
    const disputes = await own.disputes({ status: "open" });
    assert.deepEqual(
      disputes.map((dispute) => [
        dispute.reservationId,
        dispute.reason,
        dispute.chargedAtomic,
        dispute.justifiedAtomic,
      ]),
      [[first!.paymentId, "settled_after_refusal", maxAtomic, 0n]],
    );
  });

  test("a request paid at once and answered with a 402 signs again only within what is left of perCall: a seller settling both takes no more than perCall for one request", async () => {
    const seller = await dishonestSeller({ cheat: "refuse" });
    const log = eventLog();
    const own = await ownStore();
    const probe = await chat(buyerFetch(1, { store: own, onEvent: log.onEvent }), seller.url);
    await probe.arrayBuffer();
    const maxAtomic = log.of("authorized")[0]!.maxAtomic;
    const settledBefore = seller.settled.length;

    const perCall = (maxAtomic * 3n) / 2n;
    const listed = buyerFetch(1, {
      store: await ownStore(),
      onEvent: log.onEvent,
      policy: { perCall: perCall.toString() },
    });
    await listed.discover(seller.url);
    await assert.rejects(chat(listed, seller.url), (error: unknown) => {
      // Observed before: a second authorization of the maximum was signed in the same call, and the
      // seller settled both (2 × the maximum for one request, under a perCall of 1.5 × it).
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"), String(error));
      assert.equal(error.details.rule, "perCall");
      assert.equal(error.details.limitAtomic, perCall);
      assert.equal(error.details.askedAtomic, maxAtomic);
      assert.equal(error.details.authorizedAtomic, maxAtomic);
      assert.match(error.shortMessage, /already authorized \$[0-9.]+ for this request/);
      return true;
    });
    const signed = log.of("authorized").slice(1);
    assert.deepEqual(
      signed.map((event) => [event.firstRequest, event.maxAtomic]),
      [[true, maxAtomic]],
      "one authorization for the request",
    );
    const taken = seller.settled.slice(settledBefore).reduce((sum, entry) => sum + entry.chargeAtomic, 0n);
    assert.ok(taken <= perCall, `the seller took ${taken} for one request under a perCall of ${perCall}`);
  });

  test("a request paid at once and answered with a 402 asks a person before a second authorization that with the first passes confirmAbove", async () => {
    const seller = await dishonestSeller({ cheat: "refuse" });
    const log = eventLog();
    const probe = await chat(buyerFetch(1, { store: await ownStore(), onEvent: log.onEvent }), seller.url);
    await probe.arrayBuffer();
    const maxAtomic = log.of("authorized")[0]!.maxAtomic;
    const settledBefore = seller.settled.length;

    const asked: Array<{ maxAtomic: bigint; authorizedAtomic: bigint | undefined }> = [];
    const payingFetch = buyerFetch(1, {
      store: await ownStore(),
      onEvent: log.onEvent,
      policy: { confirmAbove: ((maxAtomic * 3n) / 2n).toString() },
      confirm: (request) => {
        asked.push({ maxAtomic: request.maxAtomic, authorizedAtomic: request.authorizedAtomic });
        return false;
      },
    });
    await payingFetch.discover(seller.url);
    await assert.rejects(chat(payingFetch, seller.url), (error: unknown) => {
      // Observed before: no one was asked; a second maximum was signed, and the seller settled both.
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"), String(error));
      assert.equal(error.details.rule, "confirmAbove");
      assert.equal(error.details.authorizedAtomic, maxAtomic);
      assert.match(error.shortMessage, /already authorized for this request, is above confirmAbove/);
      return true;
    });
    assert.deepEqual(asked, [{ maxAtomic, authorizedAtomic: maxAtomic }], "asked once, told of the first");
    assert.equal(log.of("authorized").length, 2, "the probe's and the one paid at once");
    const taken = seller.settled.slice(settledBefore).map((entry) => entry.chargeAtomic);
    assert.deepEqual(taken, [maxAtomic]);
  });

  test("a seller whose 402 prices a model above its own listing is refused before the second signature: listed low to be chosen, it cannot ask more", async () => {
    const seller = await dishonestSeller({
      listedPrices: { ...prices, outputPerMTokAtomic: prices.outputPerMTokAtomic / 3n },
    });
    const log = eventLog();
    const payingFetch = buyerFetch(2, { store: await ownStore(), onEvent: log.onEvent });
    await payingFetch.discover(seller.url);
    // Observed before: the 402 at three times the listed output price was signed and paid.
    await refusedByListing(
      payingFetch,
      seller.url,
      /output 15000000 atomic units per 1M tokens, listed 5000000/,
    );
    assert.equal(log.of("authorized").length, 1, "only the payment at the listed prices was signed");
    assert.equal(log.of("authorized")[0]?.firstRequest, true);
    assert.equal(seller.settled.length, 0);

    // A seller whose 402 asks what it listed is paid by the same fetch.
    await paidAsListed(payingFetch, await dishonestSeller(), honestCharge);
  });

  test("a seller whose 402 asks a fixed price above the one its listing gave is refused before signing: listed cheap to be chosen, it cannot ask more", async () => {
    // Its 402 asks the honest maximum for the chat (an exact offer of that amount); its listing says a tenth of it.
    const asked = await exactAmountOf(await dishonestSeller({ scheme: "exact" }));
    const seller = await dishonestSeller({ scheme: "exact", listedExactAtomic: asked / 10n });
    const log = eventLog();
    const payingFetch = buyerFetch(1, { store: await ownStore(), onEvent: log.onEvent });
    const [listed] = await payingFetch.discover(seller.url);
    assert.equal(listed?.exactPriceAtomic, asked / 10n);
    // Observed before: the exact payment of ten times the listed price was signed and settled.
    await refusedByListing(
      payingFetch,
      seller.url,
      new RegExp(`a fixed price of ${asked} atomic units, listed ${asked / 10n}`),
    );
    assert.equal(log.of("authorized").length, 0, "nothing was signed");
    assert.equal(seller.settled.length, 0);

    // Nor may it ask the listed fixed price in another token than the listing named.
    const listedAsset = "0x00000000000000000000000000000000000a55e7";
    const switched = await dishonestSeller({ scheme: "exact", listedExactAtomic: asked, listedAsset });
    await payingFetch.discover(switched.url);
    await refusedByListing(
      payingFetch,
      switched.url,
      new RegExp(`in ${devnet.contracts.usdc}, listed in ${listedAsset}`, "i"),
    );
    assert.equal(log.of("authorized").length, 0, "nothing was signed");

    // Nor may a model listed at a fixed price alone be offered by upto at a higher maximum, to be charged
    // by the 402's own prices. Observed before: signed at the 402's maximum, with no check.
    const switchedScheme = await dishonestSeller({ listedScheme: "exact", listedExactAtomic: asked / 10n });
    await payingFetch.discover(switchedScheme.url);
    await refusedByListing(
      payingFetch,
      switchedScheme.url,
      new RegExp(`upto up to ${asked} atomic units, listed ${asked / 10n}`),
    );
    assert.equal(log.of("authorized").length, 0, "nothing was signed");

    // A seller whose 402 asks no more than its listed fixed price is paid by the same fetch.
    await paidAsListed(
      payingFetch,
      await dishonestSeller({ scheme: "exact", listedExactAtomic: asked }),
      asked,
    );
  });

  test("a seller listed by token prices whose 402 asks a fixed exact amount above what the listing comes to for the request is refused: listed low to be chosen, it cannot switch schemes to ask more", async () => {
    const seller = await dishonestSeller({ scheme: "exact", listedScheme: "upto", inflateMaximum: 20n });
    const log = eventLog();
    const payingFetch = buyerFetch(2, { store: await ownStore(), onEvent: log.onEvent });
    await payingFetch.discover(seller.url);
    // Observed before: the exact payment of 20 × the listed maximum was signed, and settled.
    await refusedByListing(
      payingFetch,
      seller.url,
      /exact .* above the .* its listing comes to for this request/,
    );
    const signed = log.of("authorized");
    assert.deepEqual(
      signed.map((event) => event.scheme),
      ["upto"],
      "only the payment at the listed prices, which the seller answered unsettled",
    );
    assert.equal(seller.settled.length, 0);
  });

  test("a seller whose 402 asks to be paid in another asset than its listing named is refused: the listed prices were amounts of the listed token", async () => {
    const listedAsset = "0x00000000000000000000000000000000000a55e7";
    const seller = await dishonestSeller({ listedAsset });
    const log = eventLog();
    const payingFetch = buyerFetch(2, { store: await ownStore(), onEvent: log.onEvent });
    await payingFetch.discover(seller.url);
    // Observed before: the 402's amount was signed in the other token, and settled.
    await refusedByListing(
      payingFetch,
      seller.url,
      new RegExp(`in ${devnet.contracts.usdc}, listed in ${listedAsset}`, "i"),
    );
    assert.deepEqual(
      log.of("authorized").map((event) => event.asset.toLowerCase()),
      [listedAsset],
      "only the payment in the listed token, which the seller answered unsettled",
    );
    assert.equal(seller.settled.length, 0);
  });

  test("the MCP payer books an exact tool at its price whatever the settlement states, and keeps a payment the tool answered with payment required", async () => {
    const own = await ownStore();
    const log = eventLog();
    const payer = createMcpToolPayer({
      privateKey: devnet.accounts.buyers[0]!.privateKey,
      store: own,
      onEvent: log.onEvent,
    });
    const tool = { asset: devnet.contracts.usdc, payTo: devnet.accounts.payTo.address, priceAtomic: 1000n };
    const understating = dishonestToolServer({ facilitator, ...tool, cheat: "understate" });
    const served = await payer.callTool(await connectTo(understating.server), {
      name: "lookup",
      arguments: { key: "k" },
    });
    assert.equal(served.settlement?.amount, "0");
    assert.equal(understating.settled[0]?.chargeAtomic, 1000n, "the price moved");
    assert.equal(log.of("receipt")[0]?.chargedAtomic, 1000n);
    assert.equal(log.of("overcharge")[0]?.reason, "misstated_charge");
    assert.equal((await own.daySpend()).countedAtomic, 1000n);
    // Booked under the tool's name, as the seller's ledger names it (before: no name).
    assert.equal((await own.reservation(log.of("authorized")[0]!.paymentId))?.model, "lookup");

    const refusing = dishonestToolServer({ facilitator, ...tool, cheat: "refuse" });
    const refused = await payer.callTool(await connectTo(refusing.server), {
      name: "lookup",
      arguments: { key: "k" },
    });
    assert.equal(refused.result.isError, true);
    assert.equal(refusing.settled.length, 1, "the tool kept and settled the payment");
    assert.equal(log.of("released").length, 0);
    const kept = await own.reservation(log.of("authorized")[1]!.paymentId);
    assert.equal(kept?.status, "reserved");
    assert.equal(kept?.countedAtomic, 1000n);
    assert.equal((await own.daySpend()).countedAtomic, 2000n);
    const resolved = await resolvedAfterDeadline(own, kept.id);
    assert.equal(resolved?.status, "settled");
    const refusedDisputes = (await own.disputes({ status: "open" })).filter(
      (dispute) => dispute.reason === "settled_after_refusal",
    );
    assert.deepEqual(
      refusedDisputes.map((dispute) => [dispute.reservationId, dispute.chargedAtomic]),
      [[kept.id, 1000n]],
    );
  });

  test("a paid request whose connection was reset after sending stays reserved though its resend is refused; one that never connected is released", async () => {
    const seller = await dishonestSeller({ cheat: "reset" });
    const own = await ownStore();
    const log = eventLog();
    const payingFetch = buyerFetch(2, { store: own, onEvent: log.onEvent });
    await assert.rejects(chat(payingFetch, seller.url), (error: unknown) => {
      assert.equal((error as { cause?: { code?: unknown } }).cause?.code, "ECONNREFUSED", String(error));
      return true;
    });
    const [sent] = log.of("authorized");
    assert.equal(log.of("released").length, 0);
    assert.equal(log.of("unreceipted")[0]?.paymentId, sent?.paymentId);
    const row = await own.reservation(sent!.paymentId);
    assert.equal(row?.status, "reserved", "the authorization reached the seller on the first attempt");
    assert.equal(row?.countedAtomic, sent!.maxAtomic);

    // Prices known, the seller gone: the paid request never connects, and its reservation goes.
    const gone = await startDishonestSeller({
      facilitator,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      prices,
      usage,
    });
    await payingFetch.discover(gone.url);
    await gone.close();
    await assert.rejects(chat(payingFetch, gone.url));
    const [, unsent] = log.of("authorized");
    assert.equal(unsent?.firstRequest, true);
    assert.equal((await own.reservation(unsent!.paymentId))?.status, "released");
  });

  test("refuses an offer whose authorization would stay valid longer than maxTimeoutSeconds, before signing", async () => {
    const tenYears = 10 * 365 * 24 * 3600;
    const seller = await dishonestSeller({ maxTimeoutSeconds: tenYears });
    const log = eventLog();
    const payingFetch = buyerFetch(2, { onEvent: log.onEvent });
    await assert.rejects(chat(payingFetch, seller.url), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"), String(error));
      assert.equal(error.details.rule, "maxTimeoutSeconds");
      assert.equal(error.details.limitSeconds, 3600);
      assert.equal(error.details.askedSeconds, tenYears);
      return true;
    });
    // A provider's own, shorter limit refuses what the global one allows.
    const usual = await startDishonestSeller({
      facilitator,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      prices,
      usage,
    });
    closers.push(usual.close);
    const perProvider = buyerFetch(2, {
      onEvent: log.onEvent,
      policy: { providers: { [usual.url]: { maxTimeoutSeconds: 60 } } },
    });
    await assert.rejects(chat(perProvider, usual.url), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"), String(error));
      assert.equal(error.details.rule, "providers.maxTimeoutSeconds");
      assert.equal(error.details.askedSeconds, 120);
      return true;
    });
    assert.equal(log.of("authorized").length, 0, "nothing signed");
    assert.equal(seller.settled.length + usual.settled.length, 0);
  });
});
