// Hostile channel payments against a Tollgate gateway on the devnet: a voucher signed by another
// key, a cumulative below what was charged, a replayed voucher, two requests at once on one channel,
// a voucher above the channel's balance, a voucher signature in a form the contract's claim refuses.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1";
import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import {
  type BatchSettlementDepositStrategy,
  computeChannelId,
  createBatchSettlementEIP3009DepositPayload,
  signVoucher,
} from "@x402/evm/batch-settlement/client";
import {
  createPublicClient,
  createWalletClient,
  type Hex,
  hexToBigInt,
  http,
  numberToHex,
  parseSignature,
  serializeCompactSignature,
  serializeSignature,
  signatureToCompactSignature,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { batchSettlementAbi } from "../src/chain/index.js";
import { type ChannelConfig, erc3009DepositArgs } from "../src/devnet/batchSettlementTesting.js";
import type { BillingEvent } from "../src/gateway/index.js";
import type { SqlClient, SqlExecutor } from "../src/ledger/index.js";
import {
  BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
  channelTestConfig,
  depositAbi,
  openTestChannel,
  testChannelSettlement,
} from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

let h: GatewayHarness;
/** While set, writing a voucher request's payment row fails, as a full disk or a lost database would. */
let failPaymentRows = false;
/** Every billing event the gateway told. */
const events: BillingEvent[] = [];

before(async () => {
  h = await startGatewayHarness({
    configure: channelTestConfig,
    onBillingEvent: (event) => events.push(event),
    wrapSql: (sql): SqlClient => {
      const failing = <T extends SqlExecutor>(executor: T): T => ({
        ...executor,
        query(text: string, params?: readonly unknown[]) {
          if (
            failPaymentRows &&
            (text.includes("OVERRIDING SYSTEM VALUE") || text.includes("tollgate_charge_voucher_row"))
          )
            return Promise.reject(new Error("could not extend file: No space left on device"));
          return executor.query(text, params);
        },
      });
      return { ...failing(sql), transaction: (fn) => sql.transaction((tx) => fn(failing(tx))) };
    },
  });
});

after(async () => {
  await h?.close();
});

const body = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 32,
});
const url = () => `${h.gateway.url}/v1/chat/completions`;
const post = (headers: Record<string, string> = {}) =>
  fetch(url(), { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

/** A buyer whose channel is open (one paid request through the official client), and a voucher signer for it. */
const openChannel = (depositStrategy?: BatchSettlementDepositStrategy) =>
  openTestChannel(h, { body, ...(depositStrategy ? { depositStrategy } : {}) });

/** The contract's deposit (a payer's own top-up, through a deposit collector). */

const errorOf = (response: Response) =>
  decodePaymentRequiredHeader(response.headers.get("payment-required")!).error;

describe("hostile channel payments", () => {
  test("a voucher signed by another key gets its 402 with nothing forwarded, written or charged; the backend request started beside the check is cut off, and the channel's next bad voucher is checked before any", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const stranger = toClientEvmSigner(privateKeyToAccount(generatePrivateKey()));
    const forged = await channel.voucherHeader(charged + channel.requestMax, { by: stranger });
    const requestId = `forged-${Date.now()}`;
    const before = h.backend.inferenceRequests.length;
    // The backend takes the request and answers nothing: only the gateway's abort ends it.
    h.backend.set({ stallBeforeHeaders: true });
    let response: Response;
    try {
      response = await fetch(url(), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "payment-signature": forged,
          "x-request-id": requestId,
        },
        body: JSON.stringify({ ...JSON.parse(body), stream: true }),
      });
    } finally {
      h.backend.set({ stallBeforeHeaders: false });
    }
    assert.equal(response.status, 402, "a 402, not a stream");
    assert.equal(errorOf(response), "invalid_batch_settlement_evm_voucher_signature");
    const started = h.backend.inferenceRequests.slice(before);
    assert.equal(started.length, 1, "the backend request went out beside the signature check");
    for (let waited = 0; !started[0]?.clientAborted && waited < 10_000; waited += 10)
      await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(started[0]?.clientAborted, true, "and was cut off by the gateway");
    assert.equal(started[0]?.tokensSent, 0);
    const rows = (await h.gateway.ledger.payments.recent({ limit: 200 })).filter(
      (row) => row.requestId === requestId,
    );
    assert.deepEqual(rows, [], "no payment row");
    assert.deepEqual(
      events
        .filter((event) => "requestId" in event && event.requestId === requestId)
        .map((event) => event.type),
      ["refused"],
      "told as refused, never as verified or served",
    );
    assert.equal(await channel.charged(), charged, "nothing charged");
    // The forged voucher held nothing: the payer's own voucher on the same base is served.
    const paid = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax),
    });
    assert.equal(paid.status, 200, await paid.clone().text());
    const chargedNow = await channel.charged();
    assert.ok(chargedNow > charged);
    // The channel's next bad voucher is checked before its backend request starts (on the connection
    // the paid request left open, a request started beside the check would reach the backend).
    const backendNow = h.backend.inferenceRequests.length;
    const again = await post({
      "payment-signature": await channel.voucherHeader(chargedNow + channel.requestMax, { by: stranger }),
    });
    assert.equal(again.status, 402);
    assert.equal(errorOf(again), "invalid_batch_settlement_evm_voucher_signature");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(h.backend.inferenceRequests.length, backendNow, "no backend request for it");
    assert.equal(await channel.charged(), chargedNow, "nothing charged");
  });

  test("a forged voucher on a wrong cumulative learns nothing of the channel: the signature refusal, no state, no payer's voucher, and the channel does not look busy", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const stranger = toClientEvmSigner(privateKeyToAccount(generatePrivateKey()));
    const before = await h.gateway.ledger.channels.get(channel.channelId);
    const backendBefore = h.backend.inferenceRequests.length;
    for (const cumulative of [charged + channel.requestMax - 1n, charged + channel.requestMax + 10n ** 12n]) {
      const response = await post({
        "payment-signature": await channel.voucherHeader(cumulative, { by: stranger }),
      });
      assert.equal(response.status, 402);
      const required = decodePaymentRequiredHeader(response.headers.get("payment-required")!);
      assert.equal(required.error, "invalid_batch_settlement_evm_voucher_signature");
      const extra = required.accepts.find((a) => a.scheme === "batch-settlement")?.extra ?? {};
      assert.equal("channelState" in extra, false, "no channel state");
      assert.equal("voucherState" in extra, false, "no voucher of the payer's");
    }
    assert.equal(h.backend.inferenceRequests.length, backendBefore, "no backend request");
    const after = await h.gateway.ledger.channels.get(channel.channelId);
    assert.equal(after?.lastRequestAt, before?.lastRequestAt, "not made to look busy");
    assert.equal(after?.chargedAtomic, charged);
  });

  test("a forged JSON voucher on the right cumulative: 402, no row, nothing charged; the payer is then served", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const stranger = toClientEvmSigner(privateKeyToAccount(generatePrivateKey()));
    const before = await h.gateway.ledger.channels.get(channel.channelId);
    const requestId = `forged-json-${Date.now()}`;
    const response = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax, { by: stranger }),
      "x-request-id": requestId,
    });
    assert.equal(response.status, 402);
    assert.equal(errorOf(response), "invalid_batch_settlement_evm_voucher_signature");
    assert.equal(response.headers.get("cache-control"), null, "no header of the aborted backend answer");
    const rows = (await h.gateway.ledger.payments.recent({ limit: 200 })).filter(
      (row) => row.requestId === requestId,
    );
    assert.deepEqual(rows, []);
    const after = await h.gateway.ledger.channels.get(channel.channelId);
    assert.equal(after?.chargedAtomic, charged, "nothing charged");
    assert.equal(after?.pending, undefined, "the channel is free");
    assert.equal(after?.lastRequestAt, before?.lastRequestAt);
    const paid = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax),
    });
    assert.equal(paid.status, 200, await paid.clone().text());
  });

  test("a cumulative below charged + maximum gets the corrective 402 with the channel state, no inference", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    assert.ok(charged > 0n);
    const before = h.backend.inferenceRequests.length;
    const response = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax - 1n),
    });
    assert.equal(response.status, 402);
    const required = decodePaymentRequiredHeader(response.headers.get("payment-required")!);
    assert.equal(required.error, "invalid_batch_settlement_evm_cumulative_amount_mismatch");
    const extra = required.accepts.find((a) => a.scheme === "batch-settlement")?.extra as {
      channelState: { chargedCumulativeAmount: string };
      voucherState: { signedMaxClaimable: string };
    };
    assert.equal(extra.channelState.chargedCumulativeAmount, charged.toString());
    assert.ok(BigInt(extra.voucherState.signedMaxClaimable) >= charged);
    // The channel offer quotes the same prices as upto, so a buyer paying by voucher checks its charge.
    const pricingOf = (scheme: string) =>
      (required.accepts.find((a) => a.scheme === scheme)?.extra as { pricing?: unknown } | undefined)
        ?.pricing;
    assert.ok(pricingOf("batch-settlement"));
    assert.deepEqual(pricingOf("batch-settlement"), pricingOf("upto"));
    assert.equal(h.backend.inferenceRequests.length, before);
    assert.equal(await channel.charged(), charged, "nothing charged");
  });

  test("a replayed voucher is refused once it was charged", async () => {
    const channel = await openChannel();
    const header = await channel.voucherHeader((await channel.charged()) + channel.requestMax);
    const first = await post({ "payment-signature": header });
    assert.equal(first.status, 200, await first.clone().text());
    const charged = await channel.charged();
    const before = h.backend.inferenceRequests.length;
    const replay = await post({ "payment-signature": header });
    assert.equal(replay.status, 402);
    assert.equal(errorOf(replay), "invalid_batch_settlement_evm_cumulative_amount_mismatch");
    assert.equal(h.backend.inferenceRequests.length, before);
    assert.equal(await channel.charged(), charged);
  });

  test("two requests at once on one cumulative base: exactly one is served and charged", async () => {
    const channel = await openChannel();
    const base = await channel.charged();
    h.backend.set({ tokensPerSecond: 200 });
    try {
      const header = await channel.voucherHeader(base + channel.requestMax);
      const before = h.backend.inferenceRequests.length;
      const answers = await Promise.all([
        post({ "payment-signature": header }),
        post({ "payment-signature": header }),
      ]);
      const statuses = answers.map((a) => a.status).sort();
      assert.deepEqual(statuses, [200, 402]);
      const refused = answers.find((a) => a.status === 402)!;
      assert.ok(
        [
          "invalid_batch_settlement_evm_channel_busy",
          "invalid_batch_settlement_evm_cumulative_amount_mismatch",
        ].includes(errorOf(refused) ?? ""),
        String(errorOf(refused)),
      );
      await Promise.all(answers.map((a) => a.text()));
      assert.equal(h.backend.inferenceRequests.length, before + 1, "one inference");
      const charged = await channel.charged();
      assert.ok(charged > base && charged <= base + channel.requestMax);
    } finally {
      h.backend.set({ tokensPerSecond: 0 });
    }
  });

  test("a payer's withdrawal is claimed at once, whatever is owed, and its channel takes no new voucher", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
    const wallet = createWalletClient({
      account: privateKeyToAccount(channel.buyer.privateKey),
      chain: anvil,
      transport: http(h.devnet.rpcUrl),
    });
    const hash = await wallet.writeContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: batchSettlementAbi,
      functionName: "initiateWithdraw",
      args: [channel.config as never, 1_000n],
    });
    assert.equal((await publicClient.waitForTransactionReceipt({ hash })).status, "success");
    // A claim loop that claims nothing for the amounts owed here (minClaimAtomic far above them).
    const settlement = testChannelSettlement(h, { minClaimAtomic: 10n ** 12n });
    const claims = await settlement.claim();
    assert.equal(claims.length, 1);
    assert.equal(claims[0]?.channels, 1, "only the withdrawing channel");
    const [, totalClaimed] = await publicClient.readContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: batchSettlementAbi,
      functionName: "channels",
      args: [channel.channelId],
    });
    assert.equal(totalClaimed, charged);
    const response = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax),
    });
    assert.equal(response.status, 402);
    assert.equal(errorOf(response), "invalid_batch_settlement_evm_withdrawal_pending");
  });

  test("a voucher above the channel's balance is refused before inference, uncharged; a top-up deposit then pays", async () => {
    // The deposit covers exactly one request's maximum: after it, charged + maximum is above the balance.
    let topUp = false;
    const channel = await openChannel((context) => (topUp ? context.depositAmount : context.requestAmount));
    const stored = async () => (await h.gateway.ledger.channels.get(channel.channelId))!;
    const charged = await channel.charged();
    assert.ok(charged > 0n);
    assert.equal((await stored()).balanceAtomic, channel.requestMax, "the deposit was one maximum");
    const rows = async () =>
      (await h.gateway.ledger.payments.recent({ limit: 1000 })).filter(
        (row) => row.payer === channel.buyer.address.toLowerCase(),
      );
    const rowsBefore = await rows();
    const inferencesBefore = h.backend.inferenceRequests.length;

    // A correctly signed voucher for charged + maximum: valid, but above what the channel holds.
    const above = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax),
    });
    assert.equal(above.status, 402);
    const required = decodePaymentRequiredHeader(above.headers.get("payment-required")!);
    assert.equal(required.error, "invalid_batch_settlement_evm_cumulative_exceeds_balance");
    // The refusal carries the channel's state: what it holds and what was charged, so the payer can size a top-up.
    const offer = required.accepts.find((a) => a.scheme === "batch-settlement");
    assert.ok(offer);
    const state = (offer.extra as { channelState: { balance: string; chargedCumulativeAmount: string } })
      .channelState;
    assert.equal(state.balance, channel.requestMax.toString());
    assert.equal(state.chargedCumulativeAmount, charged.toString());
    assert.equal(h.backend.inferenceRequests.length, inferencesBefore, "the backend was not reached");
    assert.equal(await channel.charged(), charged, "nothing charged on the channel");
    assert.deepEqual(
      (await rows()).map((row) => [row.id, row.status, row.chargeAtomic]),
      rowsBefore.map((row) => [row.id, row.status, row.chargeAtomic]),
      "no ledger row, no charge",
    );
    assert.equal((await stored()).pending, undefined, "the channel is free for the next request");

    // The official client tops the channel up (a deposit carrying the voucher) and is served.
    topUp = true;
    const paid = await channel.payingFetch(url(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    assert.equal(paid.status, 200, await paid.clone().text());
    await paid.text();
    const after = await stored();
    assert.ok(after.balanceAtomic > channel.requestMax, "the top-up raised the balance");
    assert.ok(after.chargedAtomic > charged && after.chargedAtomic <= charged + channel.requestMax);
    assert.equal(h.backend.inferenceRequests.length, inferencesBefore + 1);
    const newRows = (await rows()).filter((row) => !rowsBefore.some((old) => old.id === row.id));
    assert.equal(newRows.length, 1);
    assert.equal(
      newRows[0]?.chargeAtomic,
      after.chargedAtomic - charged,
      "the row holds the channel's charge",
    );
  });

  test("a forged voucher above the balance makes no chain read and leaves the balance re-check to the payer", async () => {
    // The deposit covers exactly one request's maximum, so the next voucher is above the balance.
    const channel = await openChannel((context) => context.requestAmount);
    const charged = await channel.charged();
    const readLast = async () =>
      (await h.gateway.ledger.channels.get(channel.channelId))!.onchainSyncedAt ?? 0;
    const opened = await readLast();
    // Past the 2 s after which a voucher above the balance has the channel read from the chain again.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, opened + 2_000 - Date.now())));
    const stranger = toClientEvmSigner(privateKeyToAccount(generatePrivateKey()));
    const forged = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax, { by: stranger }),
    });
    assert.equal(forged.status, 402);
    assert.equal(errorOf(forged), "invalid_batch_settlement_evm_voucher_signature");
    assert.equal(await readLast(), opened, "no chain read for a forged voucher");
    // The payer's own voucher still gets the re-read it is due.
    const own = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax),
    });
    assert.equal(own.status, 402);
    assert.equal(errorOf(own), "invalid_batch_settlement_evm_cumulative_exceeds_balance");
    assert.ok((await readLast()) > opened, "read from the chain for the payer");
  });

  test("a top-up made straight on chain is seen by the next voucher above the balance read last (read again at most once per 2 s): served and charged", async () => {
    // The deposit covers exactly one request's maximum, so the next voucher is above the balance.
    const channel = await openChannel((context) => context.requestAmount);
    const charged = await channel.charged();
    const header = await channel.voucherHeader(charged + channel.requestMax);
    const stored = async () => (await h.gateway.ledger.channels.get(channel.channelId))!;
    const readLast = async () => (await stored()).onchainSyncedAt ?? 0;
    const twoSecondsAfter = async (at: number) =>
      new Promise((resolve) => setTimeout(resolve, Math.max(0, at + 2_000 - Date.now())));
    const refusedAgain = async () => {
      const response = await post({ "payment-signature": header });
      assert.equal(response.status, 402);
      assert.equal(errorOf(response), "invalid_batch_settlement_evm_cumulative_exceeds_balance");
    };

    // Above a balance read 2 s ago or more: read again (the same balance), and refused.
    const opened = await readLast();
    await twoSecondsAfter(opened);
    await refusedAgain();
    const reread = await readLast();
    assert.ok(reread > opened, "the balance was read from the chain again");
    // At once again: refused from the balance just read, with no chain read. Checked on a request
    // answered within 1.5 s of the last read, so a stalled machine cannot turn it into a re-read.
    for (let last = reread, attempt = 1; ; attempt++) {
      await refusedAgain();
      if (Date.now() - last < 1_500) {
        assert.equal(await readLast(), last, "not read again within 2 s");
        break;
      }
      assert.ok(attempt < 5, "no request was answered within 1.5 s of a chain read");
      last = await readLast();
    }

    // The payer deposits once more itself, through the ERC-3009 collector, with no gateway involved.
    const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
    const wallet = createWalletClient({
      account: privateKeyToAccount(channel.buyer.privateKey),
      chain: anvil,
      transport: http(h.devnet.rpcUrl),
    });
    const topUp = 10n * channel.requestMax;
    const hash = await wallet.writeContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: depositAbi,
      functionName: "deposit",
      args: await erc3009DepositArgs(h.devnet, channel.buyer, channel.config as ChannelConfig, topUp),
    });
    assert.equal((await publicClient.waitForTransactionReceipt({ hash })).status, "success");

    // The same voucher, 2 s after the last read: the top-up is seen, the request served and charged.
    await twoSecondsAfter(reread);
    const inferencesBefore = h.backend.inferenceRequests.length;
    const served = await post({ "payment-signature": header });
    assert.equal(served.status, 200, await served.clone().text());
    await served.text();
    assert.equal(h.backend.inferenceRequests.length, inferencesBefore + 1);
    const after = await stored();
    assert.equal(after.balanceAtomic, channel.requestMax + topUp, "the balance the chain holds");
    assert.ok(after.chargedAtomic > charged && after.chargedAtomic <= charged + channel.requestMax);
  });

  test("a voucher signature the contract's claim would refuse (high s, v of 0 or 1, 64 bytes) is refused, nothing forwarded or charged; the channel is then paid and claimed", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const cumulative = charged + channel.requestMax;
    const header = await channel.voucherHeader(cumulative);
    const decoded = JSON.parse(Buffer.from(header, "base64").toString()) as {
      payload: { voucher: { signature: Hex } };
    };
    const signature = parseSignature(decoded.payload.voucher.signature);
    const n = secp256k1.CURVE.n;
    const flippedParity = signature.yParity === 0 ? 1 : 0;
    // Each recovers the payer-authorizer off chain; OpenZeppelin's tryRecover refuses each on chain.
    const malleated: Record<string, Hex> = {
      "high s": serializeSignature({
        r: signature.r,
        s: numberToHex(n - hexToBigInt(signature.s), { size: 32 }),
        yParity: flippedParity,
      }),
      "v of 0 or 1": `${decoded.payload.voucher.signature.slice(0, 130)}0${signature.yParity}` as Hex,
      "64 bytes (EIP-2098)": serializeCompactSignature(signatureToCompactSignature(signature)),
    };
    const before = h.backend.inferenceRequests.length;
    for (const [form, odd] of Object.entries(malleated)) {
      decoded.payload.voucher.signature = odd;
      const response = await post({
        "payment-signature": Buffer.from(JSON.stringify(decoded)).toString("base64"),
      });
      assert.equal(response.status, 402, form);
      assert.equal(errorOf(response), "invalid_batch_settlement_evm_voucher_signature", form);
    }
    // The channel's first bad voucher has its backend request started beside the check (and cut off);
    // the next ones are checked before any.
    assert.ok(h.backend.inferenceRequests.length - before <= 1, "at most one backend request");
    assert.equal(await channel.charged(), charged, "nothing charged");
    // The channel is free: the canonical voucher is served, and its charge is claimed on chain.
    const paid = await post({ "payment-signature": header });
    assert.equal(paid.status, 200, await paid.clone().text());
    const chargedAfter = await channel.charged();
    assert.ok(chargedAfter > charged);
    const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
    const settlement = testChannelSettlement(h, { minClaimAtomic: 1n });
    await settlement.claim({ force: true });
    const [, totalClaimed] = await publicClient.readContract({
      address: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
      abi: batchSettlementAbi,
      functionName: "channels",
      args: [channel.channelId],
    });
    assert.equal(totalClaimed, chargedAfter, "the seller claims what it charged");
  });

  test("a payer that owes an earlier charge is refused by voucher before inference; once paid, the same voucher is served", async () => {
    const channel = await openChannel();
    const payments = h.gateway.ledger.payments;
    // An earlier upto charge of this payer whose settlement failed: a debt.
    const owed = await payments.claim(
      {
        network: h.devnet.network,
        payer: channel.buyer.address.toLowerCase(),
        nonce: 77n,
        scheme: "upto",
        model: mockModelId,
        route: "/v1/chat/completions",
        asset: h.devnet.contracts.usdc,
        payTo: h.devnet.accounts.payTo.address,
        maxAtomic: 5_000n,
        paymentPayload: {},
        paymentRequirements: {},
      },
      { serving: true },
    );
    assert.ok(owed.claimed);
    await payments.recordUsage(owed.payment.id, { promptTokens: 3, completionTokens: 4 }, 700n);
    await payments.markSettling(owed.payment.id);
    await payments.markDebt(owed.payment.id, "settle reverted");
    const charged = await channel.charged();
    const header = await channel.voucherHeader(charged + channel.requestMax);
    const before = h.backend.inferenceRequests.length;
    const refused = await post({ "payment-signature": header });
    assert.equal(refused.status, 402);
    assert.match(errorOf(refused) ?? "", /^tollgate_payer_in_debt:/);
    assert.equal(h.backend.inferenceRequests.length, before, "no inference");
    assert.equal(await channel.charged(), charged, "nothing charged");
    await payments.resolveDebt(owed.payment.id, `0x${"ab".repeat(32)}`);
    const served = await post({ "payment-signature": header });
    assert.equal(served.status, 200, "the channel was left free");
    assert.ok((await channel.charged()) > charged);
  });

  test("a JSON voucher request's row is written whole with its charge: no row while the backend works, one settled row after", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const header = await channel.voucherHeader(charged + channel.requestMax);
    const requestId = `json-row-${Date.now()}`;
    const rowsOf = async () =>
      (await h.gateway.ledger.payments.recent({ limit: 200 })).filter((row) => row.requestId === requestId);
    const backendBefore = h.backend.inferenceRequests.length;
    h.backend.set({ tokensPerSecond: 40 });
    let response: Response;
    try {
      const answered = post({ "payment-signature": header, "x-request-id": requestId });
      while (h.backend.inferenceRequests.length === backendBefore)
        await new Promise((resolve) => setTimeout(resolve, 5));
      assert.deepEqual(await rowsOf(), [], "no row while the backend works on it");
      response = await answered;
    } finally {
      h.backend.set({ tokensPerSecond: 0 });
    }
    assert.equal(response.status, 200, await response.clone().text());
    const answer = (await response.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    const chargedNow = await channel.charged();
    const rows = await rowsOf();
    assert.equal(rows.length, 1, "one row");
    const [row] = rows;
    assert.equal(row?.status, "settled");
    assert.equal(row?.scheme, "batch-settlement");
    assert.equal(row?.chargeAtomic, chargedNow - charged, "the row holds the channel's charge");
    assert.equal(row?.promptTokens, answer.usage.prompt_tokens);
    assert.equal(row?.completionTokens, answer.usage.completion_tokens);
    assert.equal(row?.maxAtomic, channel.requestMax, "the request's maximum");
    assert.ok(row?.settledAt, "settled at the charge");
  });

  test("a voucher request whose payment row cannot be written is neither served nor charged, and frees its channel", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const header = await channel.voucherHeader(charged + channel.requestMax);
    const backendBefore = h.backend.inferenceRequests.length;
    failPaymentRows = true;
    try {
      // JSON: the row is written with the charge, after the backend answered; its answer is not forwarded.
      const json = await post({ "payment-signature": header, "x-request-id": "unrecorded-json" });
      assert.equal(json.status, 503);
      const told = events
        .filter((event) => "requestId" in event && event.requestId === "unrecorded-json")
        .map((event) => event.type);
      assert.deepEqual(
        told,
        ["verified", "failed"],
        "neither served nor metered: nothing left for the buyer",
      );
      const answer = (await json.json()) as { error: { code: string; message: string } };
      assert.equal(answer.error.code, "TOLLGATE_LEDGER_FAILED");
      assert.match(answer.error.message, /nothing was served or charged/);
      assert.equal(json.headers.get("payment-response"), null, "no receipt");
      // A stream: the same voucher (the channel was freed), and not one content token.
      const streamed = await fetch(url(), {
        method: "POST",
        headers: { "content-type": "application/json", "payment-signature": header },
        body: JSON.stringify({ ...JSON.parse(body), stream: true }),
      });
      assert.equal(streamed.status, 200);
      const text = await streamed.text();
      assert.match(text, /TOLLGATE_LEDGER_FAILED/);
      assert.doesNotMatch(text, /"delta":\{[^}]*"content":"[^"]/, "no content forwarded");
      assert.doesNotMatch(text, /tollgate_receipt|"receipt"/, "no receipt");
    } finally {
      failPaymentRows = false;
    }
    assert.ok(h.backend.inferenceRequests.length > backendBefore, "the backend was started");
    assert.equal(await channel.charged(), charged, "nothing charged");
    const serving = await h.gateway.ledger.payments.listByStatus("serving");
    assert.ok(
      serving.every((row) => row.payer !== channel.buyer.address.toLowerCase()),
      "no row left serving",
    );
    // The channel is free and its cumulative base unchanged: the same voucher pays now.
    const served = await post({ "payment-signature": header });
    assert.equal(served.status, 200, await served.clone().text());
    assert.ok((await channel.charged()) > charged);
  });

  test("a voucher whose channel config is not its channel's (another payerAuthorizer, another salt) is refused before inference", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const stranger = privateKeyToAccount(generatePrivateKey());
    const strangerSigner = toClientEvmSigner(stranger);
    const before = h.backend.inferenceRequests.length;
    // The stranger names itself payerAuthorizer of the victim's funded channel and signs the voucher.
    const forged = [
      { ...channel.config, payerAuthorizer: stranger.address },
      { ...channel.config, salt: `0x${"11".repeat(32)}` as Hex },
    ];
    for (const config of forged) {
      const voucher = await signVoucher(
        strangerSigner,
        channel.channelId,
        (charged + channel.requestMax).toString(),
        h.devnet.network,
      );
      const response = await post({
        "payment-signature": encodePaymentSignatureHeader({
          x402Version: 2,
          accepted: channel.offer,
          payload: { type: "voucher", channelConfig: config, voucher },
        } as never),
      });
      assert.equal(response.status, 402);
      assert.equal(errorOf(response), "invalid_batch_settlement_evm_channel_id_mismatch");
    }
    assert.equal(h.backend.inferenceRequests.length, before, "no inference");
    assert.equal(await channel.charged(), charged, "nothing charged");
    // The channel's own config still pays.
    const served = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax),
    });
    assert.equal(served.status, 200);
  });

  test("a malformed channel payload gets 400 naming the field", async () => {
    const channel = await openChannel();
    const response = await post({
      "payment-signature": encodePaymentSignatureHeader({
        x402Version: 2,
        accepted: channel.offer,
        payload: { type: "voucher", channelConfig: {}, voucher: { channelId: channel.channelId } },
      } as never),
    });
    assert.equal(response.status, 400);
    const answer = (await response.json()) as { error: { field?: string } };
    assert.match(answer.error.field ?? "", /^payload\./);
  });

  test("a crowd naming channels of its own it never funded (a voucher on nothing, a deposit it cannot pay) is refused and leaves no channel row", async () => {
    const required = decodePaymentRequiredHeader((await post()).headers.get("payment-required")!);
    const offer = required.accepts.find((accept) => accept.scheme === "batch-settlement")!;
    const extra = offer.extra as { receiverAuthorizer: string; withdrawDelay: number };
    const stranger = privateKeyToAccount(generatePrivateKey());
    const signer = toClientEvmSigner(stranger);
    const rowsBefore = (await h.gateway.ledger.channels.list()).length;
    const inferenceBefore = h.backend.inferenceRequests.length;
    const named: Hex[] = [];
    for (let index = 0; index < 12; index++) {
      const config = {
        payer: stranger.address,
        payerAuthorizer: stranger.address,
        receiver: offer.payTo,
        receiverAuthorizer: extra.receiverAuthorizer,
        token: offer.asset,
        withdrawDelay: extra.withdrawDelay,
        salt: numberToHex(index + 1, { size: 32 }),
      };
      const channelId = computeChannelId(config as never, h.devnet.network) as Hex;
      named.push(channelId);
      // Half sign a voucher on a channel with nothing in it, half a deposit from a payer with no funds.
      const payload =
        index % 2 === 0
          ? {
              type: "voucher",
              channelConfig: config,
              voucher: await signVoucher(signer, channelId, offer.amount, h.devnet.network),
            }
          : (
              await createBatchSettlementEIP3009DepositPayload(
                signer,
                2,
                offer,
                config as never,
                "1000000",
                offer.amount,
              )
            ).payload;
      const response = await post({
        "payment-signature": encodePaymentSignatureHeader({
          x402Version: 2,
          accepted: offer,
          payload,
        } as never),
      });
      assert.equal(response.status, 402);
      assert.equal(
        errorOf(response),
        index % 2 === 0
          ? "invalid_batch_settlement_evm_cumulative_exceeds_balance"
          : "invalid_batch_settlement_evm_insufficient_balance",
      );
    }
    assert.equal(h.backend.inferenceRequests.length, inferenceBefore, "no inference");
    for (const channelId of named)
      assert.equal(await h.gateway.ledger.channels.get(channelId), undefined, `no row for ${channelId}`);
    assert.equal(
      (await h.gateway.ledger.channels.list()).length,
      rowsBefore,
      "the ledger's channels did not grow",
    );
    // A buyer that pays opens its channel as before.
    await openChannel();
    assert.equal((await h.gateway.ledger.channels.list()).length, rowsBefore + 1);
  });
});
