// The buyer pays channels (x402 batch-settlement) through @x402/evm's client scheme, against a
// seller built from the official server pieces and Tollgate's facilitator on the devnet.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { eventLog } from "./support/buyerFixtures.js";
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
