import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createPayingFetch, openSpendStore, type PayingFetch, type SpendStore } from "../src/buyer/index.js";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { createFacilitator, serveFacilitator, type TollgateFacilitator } from "../src/facilitator/index.js";
import { costAtomic } from "../src/pricing/index.js";
import { eventLog } from "./support/buyerFixtures.js";
import { startDishonestSeller } from "./support/dishonestSeller.js";
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

const chat = (payingFetch: typeof fetch, url: string) =>
  payingFetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "any-model",
      messages: [{ role: "user", content: "hello there" }],
      max_tokens: 100,
    }),
  });

describe("sellers other than Tollgate's gateway", () => {
  test("pays a seller built only with the official @x402/hono middleware; the usage, not the maximum, is settled", async () => {
    const served = await serveFacilitator({ facilitator, port: 0 });
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
    const seller = await startDishonestSeller({
      facilitator,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      prices,
      usage,
      overchargeAtomic: 500n,
    });
    closers.push(seller.close);
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
    const seller = await startDishonestSeller({
      facilitator,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      prices,
      usage,
    });
    closers.push(seller.close);
    const log = eventLog();
    const payingFetch = buyerFetch(1, { onEvent: log.onEvent });
    await (await chat(payingFetch, seller.url)).json();
    await payingFetch.idle();
    assert.equal(log.of("receipt")[0]?.chargedAtomic, honestCharge);
    assert.equal(log.of("overcharge").length, 0);
  });

  test("refuses a maximum far above the expected cost before signing (maxOverExpected)", async () => {
    const seller = await startDishonestSeller({
      facilitator,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      prices,
      usage,
      inflateMaximum: 10n,
    });
    closers.push(seller.close);
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
    const seller = await startDishonestSeller({
      facilitator,
      asset: devnet.contracts.usdc,
      payTo: devnet.accounts.payTo.address,
      prices,
      usage,
    });
    closers.push(seller.close);
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
