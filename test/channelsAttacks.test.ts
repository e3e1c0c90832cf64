// A hostile buyer on a Tollgate gateway's payment channels, against the devnet: channel configs
// and vouchers in odd forms, each refused with a clear answer, never served or charged; a stream
// read so slowly that it outlives its request's time bound, which must still be charged.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { x402Client } from "@x402/core/client";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import type { PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme, computeChannelId, signVoucher } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, createTestClient, type Hex, http, pad } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import type { GatewayConfigInput } from "../src/gateway/index.js";
import { channelTestConfig, openTestChannel } from "./support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness, startGatewayOnLedger } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { contentChunks, postWithoutReading, unchunk } from "./support/rawHttp.js";

let h: GatewayHarness;

/** The model's time bound: a stream is charged by then, whatever the buyer's pace. */
const maxDurationSeconds = 3;

/** This file's gateway config: channels, with two refunds and one small deposit a day per payer. */
const configure = (input: GatewayConfigInput): GatewayConfigInput => {
  const config = channelTestConfig({
    ...input,
    models: input.models.map((model) => ({
      ...model,
      maxOutputTokens: 60_000,
      backend: { ...model.backend, maxDurationSeconds },
    })),
  });
  return {
    ...config,
    channels: { ...config.channels!, refundsPerPayerPerDay: 2, smallDepositsPerPayerPerDay: 1 },
  };
};

before(async () => {
  h = await startGatewayHarness({ configure });
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

/** Asks for a cooperative refund of the whole remainder of a channel opened by `openTestChannel`. */
async function refundWhole(channel: Awaited<ReturnType<typeof openTestChannel>>, gatewayUrl = h.gateway.url) {
  const { payload } = JSON.parse(
    Buffer.from(await channel.voucherHeader(await channel.charged()), "base64").toString("utf8"),
  ) as { payload: Record<string, unknown> };
  return fetch(`${gatewayUrl}/v1/channels/refund`, {
    headers: {
      "payment-signature": encodePaymentSignatureHeader({
        x402Version: 2,
        accepted: channel.offer,
        payload: { ...payload, type: "refund" },
      } as never),
    },
  });
}

/** A buyer whose channel is open (one paid request through the official client). */
const openChannel = () => openTestChannel(h, { body });

/** Swaps the case of an address's letters: the same address, with a checksum that no longer holds. */
const badChecksum = (address: string) =>
  `0x${[...address.slice(2)].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join("")}`;

describe("channel payloads in odd forms", () => {
  test("a channel config whose addresses carry a broken checksum is refused with 400 naming the field, no inference", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const before = h.backend.inferenceRequests.length;
    for (const field of ["payer", "payerAuthorizer", "receiver", "receiverAuthorizer", "token"] as const) {
      const address = channel.config[field];
      // An all-digit address has no letters to break; the devnet's are mixed.
      assert.notEqual(badChecksum(address).toLowerCase(), badChecksum(address));
      const response = await post({
        "payment-signature": await channel.voucherHeader(charged + channel.requestMax, {
          config: { [field]: badChecksum(address) },
        }),
      });
      assert.equal(response.status, 400, `${field}: ${await response.clone().text()}`);
      const answer = (await response.json()) as { error: { field?: string; message: string } };
      assert.equal(answer.error.field, `payload.channelConfig.${field}`);
    }
    assert.equal(h.backend.inferenceRequests.length, before, "no inference");
    assert.equal(await channel.charged(), charged, "nothing charged");
  });

  test("a channel config in lower case is the same channel: served and charged on it", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const lower = Object.fromEntries(
      Object.entries(channel.config).map(([key, value]) => [
        key,
        typeof value === "string" ? value.toLowerCase() : value,
      ]),
    );
    const response = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax, {
        config: lower,
        voucher: { channelId: channel.channelId.toUpperCase().replace("0X", "0x") },
      }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    assert.ok((await channel.charged()) > charged);
  });

  test("a withdrawDelay beyond what the contract stores is refused with 400 naming the field", async () => {
    const channel = await openChannel();
    const before = h.backend.inferenceRequests.length;
    for (const withdrawDelay of [2 ** 40, 1e21, Number.MAX_SAFE_INTEGER + 2]) {
      const response = await post({
        "payment-signature": await channel.voucherHeader((await channel.charged()) + channel.requestMax, {
          config: { withdrawDelay },
        }),
      });
      assert.equal(response.status, 400, `${withdrawDelay}: ${await response.clone().text()}`);
      const answer = (await response.json()) as { error: { field?: string } };
      assert.equal(answer.error.field, "payload.channelConfig.withdrawDelay");
    }
    assert.equal(h.backend.inferenceRequests.length, before, "no inference");
  });

  test("a voucher amount in any form but a plain decimal below 2^128 is refused with 400, no inference", async () => {
    const channel = await openChannel();
    const cumulative = (await channel.charged()) + channel.requestMax;
    const before = h.backend.inferenceRequests.length;
    for (const maxClaimableAmount of [
      `0${cumulative}`,
      `0x${cumulative.toString(16)}`,
      `${cumulative}.0`,
      ` ${cumulative}`,
      (1n << 128n).toString(),
      `-${cumulative}`,
      Number(cumulative),
    ]) {
      const response = await post({
        "payment-signature": await channel.voucherHeader(cumulative, { voucher: { maxClaimableAmount } }),
      });
      assert.equal(response.status, 400, `${maxClaimableAmount}: ${await response.clone().text()}`);
      const answer = (await response.json()) as { error: { field?: string } };
      assert.equal(answer.error.field, "payload.voucher.maxClaimableAmount");
    }
    assert.equal(h.backend.inferenceRequests.length, before, "no inference");
  });

  test("a voucher for another request's maximum (other max_tokens than this request's) gets the corrective 402, no inference", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const before = h.backend.inferenceRequests.length;
    // Signed for this body's maximum, sent with a body that asks for more output.
    const header = await channel.voucherHeader(charged + channel.requestMax);
    const response = await fetch(url(), {
      method: "POST",
      headers: { "content-type": "application/json", "payment-signature": header },
      body: JSON.stringify({ ...JSON.parse(body), max_tokens: 64 }),
    });
    assert.equal(response.status, 402);
    assert.equal(
      decodePaymentRequiredHeader(response.headers.get("payment-required")!).error,
      "invalid_batch_settlement_evm_cumulative_amount_mismatch",
    );
    assert.equal(h.backend.inferenceRequests.length, before, "no inference");
    assert.equal(await channel.charged(), charged, "nothing charged");
  });
});

/** The charge of a JSON answer, from its PAYMENT-RESPONSE. */
const chargeOf = (response: Response) =>
  BigInt(decodePaymentResponseHeader(response.headers.get("payment-response")!).amount ?? "0");

describe("a backend that misreports usage on a channel-paid request", () => {
  test("usage above the maximum, or none at all, is charged as what was delivered, never the maximum", async () => {
    const channel = await openChannel();
    try {
      // With no usage, the gateway counts what it delivered and the prompt itself.
      h.backend.set({ reportUsage: false });
      const counted = await post({
        "payment-signature": await channel.voucherHeader((await channel.charged()) + channel.requestMax),
      });
      assert.equal(counted.status, 200, await counted.clone().text());
      const countedCharge = chargeOf(counted);
      assert.ok(countedCharge > 0n && countedCharge < channel.requestMax);
      // Usage far above the maximum is not believed: the same count, not the maximum.
      h.backend.set({
        reportUsage: true,
        usageOverride: { prompt_tokens: 10_000_000, completion_tokens: 10_000_000 },
      });
      const charged = await channel.charged();
      const inflated = await post({
        "payment-signature": await channel.voucherHeader(charged + channel.requestMax),
      });
      assert.equal(inflated.status, 200, await inflated.clone().text());
      assert.equal(chargeOf(inflated), countedCharge);
      assert.equal(await channel.charged(), charged + countedCharge, "the channel moved by the charge");
    } finally {
      h.backend.set({ usageOverride: undefined, reportUsage: true });
    }
  });
});

describe("a buyer that hangs up, or asks for a refund, mid-request", () => {
  const streamBody = JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "hello" }],
    max_tokens: 200,
    stream: true,
  });
  const streamMax = async () =>
    BigInt(
      decodePaymentRequiredHeader(
        (
          await fetch(url(), {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: streamBody,
          })
        ).headers.get("payment-required")!,
      ).accepts.find((accept) => accept.scheme === "batch-settlement")!.amount,
    );
  /** Waits until the channel has no request in flight. */
  const whenFree = async (channelId: string) => {
    while ((await h.gateway.ledger.channels.get(channelId))?.pending) await sleep(50);
  };

  test("a stream the buyer leaves mid-way is charged what was delivered; the channel is free on the new base", async () => {
    const channel = await openChannel();
    const before = await channel.charged();
    const max = await streamMax();
    h.backend.set({ responseTokens: 200, tokensPerSecond: 40 });
    try {
      const abort = new AbortController();
      const response = await fetch(url(), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "payment-signature": await channel.voucherHeader(before + max),
        },
        body: streamBody,
        signal: abort.signal,
      });
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      let text = "";
      while ((text.match(/"content"/g) ?? []).length < 5)
        text += new TextDecoder().decode((await reader.read()).value);
      abort.abort();
      await whenFree(channel.channelId);
    } finally {
      h.backend.set({ responseTokens: 16, tokensPerSecond: 0 });
    }
    const after = await channel.charged();
    assert.ok(after > before, "what was delivered is charged");
    assert.ok(after - before < max, "not the maximum");
    const next = await post({ "payment-signature": await channel.voucherHeader(after + channel.requestMax) });
    assert.equal(next.status, 200, await next.clone().text());
  });

  test("a refund asked while a request is in flight is refused as busy; odd refund amounts are refused; the refund after returns exactly balance − charged", async () => {
    const channel = await openChannel();
    const refundHeader = async (charged: bigint, amount?: string, voucherAtomic = charged) => {
      const { payload } = JSON.parse(
        Buffer.from(await channel.voucherHeader(voucherAtomic), "base64").toString("utf8"),
      ) as { payload: { channelConfig: unknown; voucher: unknown } };
      return encodePaymentSignatureHeader({
        x402Version: 2,
        accepted: channel.offer,
        payload: { ...payload, type: "refund", ...(amount === undefined ? {} : { amount }) },
      } as never);
    };
    const refund = async (header: string) =>
      fetch(`${h.gateway.url}/v1/channels/refund`, { headers: { "payment-signature": header } });
    const errorOf = (response: Response) =>
      decodePaymentRequiredHeader(response.headers.get("payment-required")!).error;

    const before = await channel.charged();
    const max = await streamMax();
    h.backend.set({ responseTokens: 200, stallAfterChunks: 3 });
    const abort = new AbortController();
    try {
      const inFlight = await fetch(url(), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "payment-signature": await channel.voucherHeader(before + max),
        },
        body: streamBody,
        signal: abort.signal,
      });
      assert.equal(inFlight.status, 200);
      const busy = await refund(await refundHeader(before));
      assert.equal(busy.status, 402, await busy.clone().text());
      assert.equal(errorOf(busy), "invalid_batch_settlement_evm_channel_busy");
      abort.abort();
      await whenFree(channel.channelId);
    } finally {
      h.backend.set({ responseTokens: 16, stallAfterChunks: undefined });
    }
    const charged = await channel.charged();
    assert.ok(charged > before, "the request left was charged");
    const stored = (await h.gateway.ledger.channels.get(channel.channelId))!;
    const remainder = stored.balanceAtomic - charged;
    for (const [amount, voucherAtomic, reason] of [
      ["0", charged, "invalid_batch_settlement_evm_refund_amount_invalid"],
      [(remainder + 1n).toString(), charged, "invalid_batch_settlement_evm_refund_amount_invalid"],
      [undefined, charged - 1n, "invalid_batch_settlement_evm_cumulative_amount_mismatch"],
      [undefined, charged + 1n, "invalid_batch_settlement_evm_cumulative_amount_mismatch"],
    ] as const) {
      const odd = await refund(await refundHeader(charged, amount, voucherAtomic));
      assert.equal(odd.status, 402, `${amount} on ${voucherAtomic}`);
      assert.equal(errorOf(odd), reason, `${amount} on ${voucherAtomic}`);
    }
    const malformed = await refund(
      encodePaymentSignatureHeader({
        x402Version: 2,
        accepted: channel.offer,
        payload: {
          ...JSON.parse(Buffer.from(await refundHeader(charged), "base64").toString("utf8")).payload,
          channelConfig: { ...channel.config, payer: badChecksum(channel.config.payer) },
        },
      } as never),
    );
    assert.equal(malformed.status, 400);
    assert.equal(
      ((await malformed.json()) as { error: { field?: string } }).error.field,
      "payload.channelConfig.payer",
    );
    const payerBefore = await h.devnet.usdcBalance(channel.payer);
    const refunded = await refund(await refundHeader(charged));
    assert.equal(refunded.status, 200, await refunded.clone().text());
    assert.equal(
      await h.devnet.usdcBalance(channel.payer),
      payerBefore + remainder,
      "the payer got the rest back",
    );
    assert.equal(await channel.charged(), charged, "nothing more charged");
  });
});

describe("a buyer that reads its stream slowly", () => {
  test("a stream the buyer stops reading is charged by its time bound: a later request on the channel cannot make it free", async () => {
    const channel = await openChannel();
    const chargedBefore = await channel.charged();
    const longBody = JSON.stringify({
      model: mockModelId,
      messages: [{ role: "user", content: "hello" }],
      max_tokens: 50_000,
      stream: true,
    });
    h.backend.set({ responseTokens: 50_000 });
    const quoted = await fetch(url(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: longBody,
    });
    const longMax = BigInt(
      decodePaymentRequiredHeader(quoted.headers.get("payment-required")!).accepts.find(
        (accept) => accept.scheme === "batch-settlement",
      )!.amount,
    );
    const longHeader = await channel.voucherHeader(chargedBefore + longMax);

    // The buyer sends the request, then reads nothing: the gateway's writes back up.
    const { port } = new URL(h.gateway.url);
    const served = h.backend.inferenceRequests.length;
    const buyerSide = postWithoutReading(Number(port), "/v1/chat/completions", longBody, {
      "payment-signature": longHeader,
    });
    while (h.backend.inferenceRequests.length === served) await sleep(50);
    // Past the time bound and past the 30 s a reservation outlives it.
    await sleep(maxDurationSeconds * 1000 + 32_000);

    // Another request on the channel, on the base the gateway holds now.
    h.backend.set({ responseTokens: 16 });
    const charged = await channel.charged();
    const next = await post({
      "payment-signature": await channel.voucherHeader(charged + channel.requestMax),
    });
    assert.equal(next.status, 200, await next.clone().text());

    // The buyer reads the rest of its stream.
    const raw = await buyerSide.readRest();
    assert.match(raw.toString("latin1"), /^HTTP\/1\.1 200/);
    const text = unchunk(raw);
    // Each of the mock's words is one token: what the buyer got is what it must pay for.
    const delivered = contentChunks(text);
    assert.ok(delivered > 0, "output was delivered");

    const rows = (await h.gateway.ledger.payments.recent({ limit: 1000 })).filter(
      (row) => row.scheme === "batch-settlement" && row.payer === channel.payer.toLowerCase(),
    );
    const long = rows.find((row) => row.maxAtomic === longMax);
    assert.ok(long, "the stream's payment row");
    assert.equal(long.status, "settled", `the stream was charged (${long.status})`);
    assert.equal(long.completionTokens, delivered, "charged for exactly what was delivered");
    assert.ok((long.chargeAtomic ?? 0n) > 0n);
    const total = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
    assert.equal(await channel.charged(), total, "the channel's charged total is every row's charge");
  });
});

describe("a deposit that takes long to land", () => {
  test("a request whose deposit outlasts the reservation margin keeps its channel: a second request cannot take it and make the first free", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const account = privateKeyToAccount(buyer.privateKey);
    const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
    const payingFetch = () =>
      wrapFetchWithPayment(
        fetch,
        x402Client.fromConfig({
          schemes: [
            {
              network: h.devnet.network,
              client: new BatchSettlementEvmScheme(toClientEvmSigner(account, publicClient)),
            },
          ],
          spendControls: false,
        }),
      );
    const pay = (paying: typeof fetch) =>
      paying(url(), { method: "POST", headers: { "content-type": "application/json" }, body });
    const required = decodePaymentRequiredHeader((await post()).headers.get("payment-required")!);
    const offer = required.accepts.find(
      (accept) => accept.scheme === "batch-settlement",
    ) as PaymentRequirements;
    const channelId = computeChannelId(
      new BatchSettlementEvmScheme(toClientEvmSigner(account, publicClient)).buildChannelConfig(offer),
      h.devnet.network,
    );
    const pendingOf = async () => (await h.gateway.ledger.channels.get(channelId))?.pending?.id;

    // The chain stops mining: the first request's deposit waits, its channel reserved.
    await publicClient.request({ method: "evm_setAutomine" as never, params: [false] as never });
    let first: Promise<Response> | undefined;
    let second: Promise<Response> | undefined;
    try {
      first = pay(payingFetch());
      while ((await pendingOf()) === undefined) await sleep(50);
      const firstReservation = await pendingOf();
      // Past the request's time bound and the 30 s its reservation outlives it, the deposit still waiting.
      await sleep(maxDurationSeconds * 1000 + 32_000);
      // Another client of the same payer, on the same channel, with its own deposit.
      second = pay(payingFetch());
      for (let i = 0; i < 40 && (await pendingOf()) === firstReservation; i++) await sleep(50);
    } finally {
      await publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never });
      await publicClient.request({ method: "evm_mine" as never, params: [] as never });
    }
    const answers = await Promise.all([first, second]);
    const served = answers.filter((answer) => answer?.status === 200).length;
    assert.ok(served >= 1, "a request was served");
    const rows = (await h.gateway.ledger.payments.recent({ limit: 1000 })).filter(
      (row) => row.scheme === "batch-settlement" && row.payer === buyer.address.toLowerCase(),
    );
    assert.equal(
      rows.filter((row) => row.status === "settled").length,
      served,
      "every request served was charged",
    );
    const total = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
    assert.equal((await h.gateway.ledger.channels.get(channelId))!.chargedAtomic, total);
  });
});

describe("a deposit payload that claims more than it moves", () => {
  for (const [name, tamper] of [
    ["raised after signing", (amount: bigint) => (amount * 100n).toString()],
    ["zero", () => "0"],
  ] as const)
    test(`a deposit amount ${name} is refused before inference; nothing is served or charged`, async () => {
      const buyer = await h.devnet.createBuyer(100_000_000n);
      const account = privateKeyToAccount(buyer.privateKey);
      const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
      let tampered = 0;
      // The buyer's own fetch rewrites the deposit amount in the payment header the official client signed.
      const tamperingFetch: typeof fetch = async (input, init) => {
        const request = new Request(input, init);
        const header = request.headers.get("payment-signature");
        if (header) {
          const payment = JSON.parse(Buffer.from(header, "base64").toString("utf8"));
          if (payment.payload?.type === "deposit") {
            payment.payload.deposit.amount = tamper(BigInt(payment.payload.deposit.amount));
            request.headers.set("payment-signature", encodePaymentSignatureHeader(payment));
            tampered++;
          }
        }
        return fetch(request);
      };
      const payingFetch = wrapFetchWithPayment(
        tamperingFetch,
        x402Client.fromConfig({
          schemes: [
            {
              network: h.devnet.network,
              client: new BatchSettlementEvmScheme(toClientEvmSigner(account, publicClient)),
            },
          ],
          spendControls: false,
        }),
      );
      const served = h.backend.inferenceRequests.length;
      const usdcBefore = await h.devnet.usdcBalance(buyer.address);
      const response = await payingFetch(url(), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(tampered, 1, "the deposit was tampered with");
      assert.equal(response.status, 402, await response.clone().text());
      assert.equal(h.backend.inferenceRequests.length, served, "no inference");
      assert.equal(await h.devnet.usdcBalance(buyer.address), usdcBefore, "nothing moved");
      const rows = (await h.gateway.ledger.payments.recent({ limit: 1000 })).filter(
        (row) => row.payer === buyer.address.toLowerCase(),
      );
      assert.deepEqual(rows, [], "no payment row");
    });
});

describe("a refund that takes long to land", () => {
  test("while a refund waits for the chain, past its first reservation, the channel takes no voucher", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const { payload } = JSON.parse(
      Buffer.from(await channel.voucherHeader(charged), "base64").toString("utf8"),
    ) as {
      payload: Record<string, unknown>;
    };
    const refundHeader = encodePaymentSignatureHeader({
      x402Version: 2,
      accepted: channel.offer,
      payload: { ...payload, type: "refund" },
    } as never);
    const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
    const served = h.backend.inferenceRequests.length;
    // The chain stops mining: the refund's transaction waits.
    await publicClient.request({ method: "evm_setAutomine" as never, params: [false] as never });
    let refunded: Promise<Response> | undefined;
    let during: Response | undefined;
    try {
      refunded = fetch(`${h.gateway.url}/v1/channels/refund`, {
        headers: { "payment-signature": refundHeader },
      });
      while (!(await h.gateway.ledger.channels.get(channel.channelId))?.pending) await sleep(50);
      // Past the two minutes the refund first reserved its channel for.
      await sleep(125_000);
      during = await post({ "payment-signature": await channel.voucherHeader(charged + channel.requestMax) });
    } finally {
      await publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never });
      await publicClient.request({ method: "evm_mine" as never, params: [] as never });
    }
    assert.equal(during.status, 402, "no voucher is served on the balance being refunded");
    assert.equal(
      decodePaymentRequiredHeader(during.headers.get("payment-required")!).error,
      "invalid_batch_settlement_evm_channel_busy",
    );
    assert.equal(h.backend.inferenceRequests.length, served, "no inference");
    // The facilitator may stop waiting first (503, the transaction not confirmed): the refund lands all the same.
    const answer = await refunded;
    assert.ok(answer.status === 200 || answer.status === 503, await answer.clone().text());
    while ((await h.gateway.ledger.channels.get(channel.channelId))?.pending) await sleep(100);
    const after = (await h.gateway.ledger.channels.get(channel.channelId))!;
    assert.equal(after.chargedAtomic, charged, "nothing charged");
    assert.equal(
      after.balanceAtomic,
      charged,
      "the refund landed: the escrow keeps exactly what was charged",
    );
  });
});

describe("the gateway refunding an idle channel", () => {
  test("while an idle channel's refund waits for the chain, the channel takes no voucher", async () => {
    const settlement = h.gateway.channels!.settlement;
    // Every other channel's unspent balance goes back first: the next refund is this channel's alone.
    await settlement.refundIdle(0);
    const channel = await openChannel();
    const charged = await channel.charged();
    const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
    const pendingTransactions = async () =>
      Number(
        (
          (await publicClient.request({ method: "txpool_status" as never, params: [] as never })) as {
            pending: string;
          }
        ).pending,
      );
    const served = h.backend.inferenceRequests.length;
    await publicClient.request({ method: "evm_setAutomine" as never, params: [false] as never });
    let refunds: ReturnType<typeof settlement.refundIdle> | undefined;
    let during: Response | undefined;
    try {
      refunds = settlement.refundIdle(0);
      while ((await pendingTransactions()) === 0) await sleep(50);
      during = await post({ "payment-signature": await channel.voucherHeader(charged + channel.requestMax) });
    } finally {
      await publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never });
      await publicClient.request({ method: "evm_mine" as never, params: [] as never });
    }
    assert.equal(during.status, 402, "no voucher is served on the balance being refunded");
    assert.equal(
      decodePaymentRequiredHeader(during.headers.get("payment-required")!).error,
      "invalid_batch_settlement_evm_channel_busy",
    );
    assert.equal(h.backend.inferenceRequests.length, served, "no inference");
    const done = await refunds;
    assert.deepEqual(
      done.map((refund) => refund.channelId.toLowerCase()),
      [channel.channelId.toLowerCase()],
    );
    const after = (await h.gateway.ledger.channels.get(channel.channelId))!;
    assert.equal(after.chargedAtomic, charged, "nothing charged");
    assert.equal(after.pending, undefined, "the channel is free again");
    assert.equal(after.balanceAtomic, charged, "the escrow keeps exactly what was charged");
  });
});

/**
 * The official client paying by channel with deposits sized to exactly what the next voucher needs (its
 * user may size them so): each is below the seller's minimum deposit.
 */
const smallDepositFetch = (privateKey: Hex, salt?: Hex) =>
  wrapFetchWithPayment(
    fetch,
    x402Client.fromConfig({
      schemes: [
        {
          network: h.devnet.network,
          client: new BatchSettlementEvmScheme(
            toClientEvmSigner(
              privateKeyToAccount(privateKey),
              createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) }),
            ),
            {
              depositStrategy: ({ minimumDepositAmount }) => minimumDepositAmount,
              ...(salt ? { salt } : {}),
            },
          ),
        },
      ],
      spendControls: false,
    }),
  );

describe("a payer that makes the seller pay gas for nothing", () => {
  /** The transactions the devnet's facilitator key (the gateway's in-process facilitator) has sent. */
  const facilitatorTransactions = () =>
    createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) }).getTransactionCount({
      address: h.devnet.accounts.facilitator.address,
    });

  test("a partial refund below the minimum deposit is refused before any transaction; the whole remainder comes back in one", async () => {
    const channel = await openChannel();
    const charged = await channel.charged();
    const refundHeader = async (amount?: string) => {
      const { payload } = JSON.parse(
        Buffer.from(await channel.voucherHeader(charged), "base64").toString("utf8"),
      ) as { payload: Record<string, unknown> };
      return encodePaymentSignatureHeader({
        x402Version: 2,
        accepted: channel.offer,
        payload: { ...payload, type: "refund", ...(amount === undefined ? {} : { amount }) },
      } as never);
    };
    const refund = async (amount?: string) =>
      fetch(`${h.gateway.url}/v1/channels/refund`, {
        headers: { "payment-signature": await refundHeader(amount) },
      });
    const stored = (await h.gateway.ledger.channels.get(channel.channelId))!;
    const remainder = stored.balanceAtomic - charged;
    assert.ok(remainder > 2n);
    const sentBefore = await facilitatorTransactions();
    // One atomic unit per refund would have the seller send a transaction (~64k gas) per unit.
    for (const amount of ["1", (remainder - 1n).toString()]) {
      const partial = await refund(amount);
      assert.equal(partial.status, 402, `${amount}: ${await partial.clone().text()}`);
      const error = decodePaymentRequiredHeader(partial.headers.get("payment-required")!).error ?? "";
      assert.match(
        error,
        /^invalid_batch_settlement_evm_refund_amount_invalid: a partial refund returns at least/,
      );
      assert.match(error, new RegExp(`the whole ${remainder} back`));
    }
    assert.equal(await facilitatorTransactions(), sentBefore, "no transaction for a refused refund");
    const payerBefore = await h.devnet.usdcBalance(channel.payer);
    const whole = await refund();
    assert.equal(whole.status, 200, await whole.clone().text());
    assert.equal(await h.devnet.usdcBalance(channel.payer), payerBefore + remainder);
    const again = await refund();
    assert.equal(again.status, 402);
    assert.equal(await facilitatorTransactions(), sentBefore + 1, "one transaction for the whole refund");
  });
  test("a payer's cooperative refunds are limited per day, across its channels: the one past the limit is refused before any transaction, with what to do", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const opened: Awaited<ReturnType<typeof openChannel>>[] = [];
    for (const salt of ["0x01", "0x02", "0x03"] as const)
      opened.push(await openTestChannel(h, { body, buyer, salt: pad(salt, { size: 32 }) }));
    assert.equal(new Set(opened.map((channel) => channel.channelId)).size, 3, "three channels of one payer");
    for (const channel of opened.slice(0, 2)) {
      const refunded = await refundWhole(channel);
      assert.equal(refunded.status, 200, await refunded.clone().text());
    }
    const sentBefore = await facilitatorTransactions();
    const refused = await refundWhole(opened[2]!);
    assert.equal(refused.status, 402, await refused.clone().text());
    const error = decodePaymentRequiredHeader(refused.headers.get("payment-required")!).error ?? "";
    assert.match(
      error,
      /^tollgate_refund_limit_reached: this payer had 2 cooperative refunds in the last 24 h \(limit 2, each a transaction the seller pays\); ask again after .+, or withdraw on chain/,
    );
    assert.equal(await facilitatorTransactions(), sentBefore, "no transaction for the refused refund");
    const stored = (await h.gateway.ledger.channels.get(opened[2]!.channelId))!;
    assert.ok(
      stored.balanceAtomic > stored.chargedAtomic,
      "its balance stays in the channel, the payer's to withdraw",
    );
  });

  test("a refund that fails before any transaction is sent (the seller's wallet cannot pay its gas) does not count against its payer's refunds", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const opened: Awaited<ReturnType<typeof openChannel>>[] = [];
    for (const salt of ["0x11", "0x12"] as const)
      opened.push(await openTestChannel(h, { body, buyer, salt: pad(salt, { size: 32 }) }));
    const testClient = createTestClient({ mode: "anvil", chain: anvil, transport: http(h.devnet.rpcUrl) });
    const facilitator = h.devnet.accounts.facilitator.address;
    const funded = await createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) }).getBalance({
      address: facilitator,
    });
    const sentBefore = await facilitatorTransactions();
    try {
      await testClient.setBalance({ address: facilitator, value: 0n });
      // Twice (this harness allows two refunds a day per payer): each fails, nothing sent.
      for (let attempt = 0; attempt < 2; attempt++) {
        const failed = await refundWhole(opened[0]!);
        assert.notEqual(failed.status, 200, await failed.clone().text());
        await failed.text();
      }
    } finally {
      await testClient.setBalance({ address: facilitator, value: funded });
    }
    assert.equal(await facilitatorTransactions(), sentBefore, "no refund transaction was sent");
    const refunded = await refundWhole(opened[1]!);
    assert.equal(refunded.status, 200, await refunded.clone().text());
  });

  test("deposits below the minimum deposit are relayed only a few times a day per payer: sized to each request, they would cost the seller a deposit per request", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const payingFetch = smallDepositFetch(buyer.privateKey);
    const ask = () =>
      payingFetch(url(), { method: "POST", headers: { "content-type": "application/json" }, body });
    // The first (this harness allows one a day per payer) is relayed: a buyer's caps can size one so.
    const first = await ask();
    assert.equal(first.status, 200, await first.clone().text());
    await first.text();
    const walletAfterFirst = await h.devnet.usdcBalance(buyer.address);
    const sentBefore = await facilitatorTransactions();
    const inferencesBefore = h.backend.inferenceRequests.length;
    // The next request needs a top-up: sized to it alone, it would be a deposit per request.
    const refused = await ask();
    assert.equal(refused.status, 402, await refused.clone().text());
    const error = decodePaymentRequiredHeader(refused.headers.get("payment-required")!).error ?? "";
    assert.match(
      error,
      /^tollgate_channel_deposit_too_small: a deposit of \d+ is below this seller's minimum 1000000 \(the offer's extra.minDeposit\), and this payer had 1 such in the last 24 h \(limit 1\)/,
    );
    assert.equal(await facilitatorTransactions(), sentBefore, "no deposit sent");
    assert.equal(h.backend.inferenceRequests.length, inferencesBefore, "no inference");
    assert.equal(await h.devnet.usdcBalance(buyer.address), walletAfterFirst, "nothing moved");
  });

  test("small deposits sent at once into channels of their own count against their payer's allowance together: the seller relays no more than the allowance", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    // One payer, six channels (six salts), each opened with a deposit sized to one request, all at once.
    const payingFetchFor = (salt: number) =>
      smallDepositFetch(buyer.privateKey, pad(`0x${(0x5a1700 + salt).toString(16)}`, { size: 32 }));
    const sentBefore = await facilitatorTransactions();
    const responses = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((salt) =>
        payingFetchFor(salt)(url(), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        }),
      ),
    );
    const statuses = await Promise.all(
      responses.map(async (response) => {
        await response.text();
        return response.status;
      }),
    );
    const relayed = (await facilitatorTransactions()) - sentBefore;
    assert.ok(
      relayed <= 1,
      `the seller relayed ${relayed} small deposits of one payer (allowance 1 a day); answers ${statuses.join(", ")}`,
    );
    assert.equal(statuses.filter((status) => status === 200).length, relayed, statuses.join(", "));
  });

  test("a gateway started again on the ledger, or a replica beside it, counts the refunds and small deposits the payer already had: the limits hold across them", async () => {
    const buyer = await h.devnet.createBuyer(100_000_000n);
    const opened: Awaited<ReturnType<typeof openChannel>>[] = [];
    for (const salt of ["0x21", "0x22", "0x23"] as const)
      opened.push(await openTestChannel(h, { body, buyer, salt: pad(salt, { size: 32 }) }));
    for (const channel of opened.slice(0, 2)) {
      const refunded = await refundWhole(channel);
      assert.equal(refunded.status, 200, await refunded.clone().text());
    }
    // The payer's one small deposit of the day, through the first gateway.
    const smallFetch = smallDepositFetch(buyer.privateKey);
    const first = await smallFetch(url(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    assert.equal(first.status, 200, await first.clone().text());
    await first.text();

    const replica = await startGatewayOnLedger(h, configure);
    try {
      const sentBefore = await facilitatorTransactions();
      const inferencesBefore = h.backend.inferenceRequests.length;
      const refused = await refundWhole(opened[2]!, replica.url);
      assert.equal(refused.status, 402, await refused.clone().text());
      assert.match(
        decodePaymentRequiredHeader(refused.headers.get("payment-required")!).error ?? "",
        /^tollgate_refund_limit_reached: this payer had 2 cooperative refunds in the last 24 h \(limit 2/,
      );
      // A second small deposit (a top-up sized to the next request), through the replica.
      const again = await smallFetch(`${replica.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(again.status, 402, await again.clone().text());
      assert.match(
        decodePaymentRequiredHeader(again.headers.get("payment-required")!).error ?? "",
        /^tollgate_channel_deposit_too_small: .* this payer had 1 such in the last 24 h \(limit 1\)/,
      );
      assert.equal(await facilitatorTransactions(), sentBefore, "no refund, no deposit sent");
      assert.equal(h.backend.inferenceRequests.length, inferencesBefore, "no inference");
    } finally {
      await replica.close();
    }
  });
});

describe("a refund asked for a channel this gateway was never paid through", () => {
  test("is refused from the ledger, without reading the chain", async () => {
    // A second gateway on the same chain, its RPC through a relay that counts the calls it is sent.
    const calls: string[] = [];
    const relay = createServer(async (request, answer) => {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks).toString();
      for (const call of [JSON.parse(body)].flat() as { method: string }[]) calls.push(call.method);
      const upstream = await fetch(h.devnet.rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      answer.writeHead(upstream.status, { "content-type": "application/json" });
      answer.end(await upstream.text());
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    const second = await startGatewayHarness({
      devnet: h.devnet,
      rpcUrl: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
      configure: channelTestConfig,
    });
    try {
      const buyer = await h.devnet.createBuyer(1_000_000n);
      const signer = toClientEvmSigner(
        privateKeyToAccount(buyer.privateKey),
        createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) }),
      );
      const quoted = await fetch(`${second.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const offer = decodePaymentRequiredHeader(quoted.headers.get("payment-required")!).accepts.find(
        (accept) => accept.scheme === "batch-settlement",
      ) as PaymentRequirements;
      // A channel of its own, never deposited into nor paid through: its voucher is well signed.
      const scheme = new BatchSettlementEvmScheme(signer, { salt: pad("0x7e57", { size: 32 }) });
      const config = scheme.buildChannelConfig(offer);
      const channelId = computeChannelId(config, h.devnet.network);
      const voucher = await signVoucher(signer, channelId, "0", h.devnet.network);
      const header = encodePaymentSignatureHeader({
        x402Version: 2,
        accepted: offer,
        payload: { type: "refund", channelConfig: config, voucher },
      } as never);
      const before = calls.length;
      const refused = await fetch(`${second.gateway.url}/v1/channels/refund`, {
        headers: { "payment-signature": header },
      });
      assert.equal(refused.status, 402, await refused.clone().text());
      assert.match(
        decodePaymentRequiredHeader(refused.headers.get("payment-required")!).error ?? "",
        /missing_channel|unknown/,
      );
      assert.deepEqual(calls.slice(before), [], "no chain call");
    } finally {
      await second.close();
      relay.closeAllConnections();
      relay.close();
    }
  });
});
