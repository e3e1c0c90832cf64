import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import {
  type CreateFacilitatorParameters,
  createFacilitator,
  serveFacilitator,
} from "../src/facilitator/index.js";
import { decodePaymentRequiredHeader, type PaymentPayload } from "../src/protocol/index.js";
import { facilitatorAuth, TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";
import { startOfficialUptoSeller } from "./support/officialUptoSeller.js";
import { recordingFetch } from "./support/recordingFetch.js";

// A seller built only from the official middleware, settling through `tollgate facilitator`'s HTTP API,
// and a fresh wallet (USDC, no Permit2 approval, no gas) that pays each request with an EIP-2612 permit.
const prices = { inputPerMTokAtomic: 3_000_000n, outputPerMTokAtomic: 15_000_000n, fixedFeeAtomic: 0n };
const usage = { promptTokens: 9, completionTokens: 20 };
const chatBody = JSON.stringify({ model: "official-model", messages: [{ role: "user", content: "hi" }] });

let devnet: Devnet;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  devnet = await startDevnet({ buyers: 1 });
});
after(async () => {
  for (const close of closers.reverse()) await close();
  await devnet?.stop();
});

/**
 * `tollgate facilitator` (its HTTP API, with `options`) and a seller built only from the official
 * middleware on it, declaring `eip2612GasSponsoring`; both closed after the suite.
 */
async function startPermitSeller(options: Partial<CreateFacilitatorParameters> = {}) {
  const facilitator = createFacilitator({
    rpcUrl: devnet.rpcUrl,
    privateKey: devnet.accounts.facilitator.privateKey,
    network: devnet.network,
    pollingIntervalMs: 20,
    ...options,
  });
  const served = await serveFacilitator({ facilitator, token: TEST_FACILITATOR_TOKEN, port: 0 });
  closers.push(served.close);
  const seller = await startOfficialUptoSeller({
    facilitatorUrl: served.url,
    network: devnet.network,
    asset: devnet.contracts.usdc,
    payTo: devnet.accounts.payTo.address,
    maxAtomic: 50_000n,
    prices,
    usage,
    eip2612: { name: "USD Coin", version: "2" },
  });
  closers.push(seller.close);
  return { facilitator, served, seller };
}

/** The official client for `privateKey`, recording each payment it sends. */
function officialBuyer(privateKey: `0x${string}`) {
  const { fetch: recording, payloads } = recordingFetch();
  const client = new x402Client()
    .register(devnet.network, new UptoEvmScheme(privateKeyToAccount(privateKey), { rpcUrl: devnet.rpcUrl }))
    .setSpendControls(false);
  return { pay: wrapFetchWithPayment(recording, client), payloads };
}

const permitNonceOf = (payload: PaymentPayload | undefined) =>
  (payload?.extensions?.eip2612GasSponsoring as { info?: { nonce?: string } } | undefined)?.info?.nonce;

describe("the official middleware on Tollgate's facilitator, paid with EIP-2612 permits", () => {
  test("a fresh wallet's requests sent at once, each with a permit on one token nonce, are served only as far as they settle: the seller serves none unpaid", async () => {
    const { seller } = await startPermitSeller();
    const wallet = await devnet.createFreshBuyer(10_000_000n);
    const buyer = officialBuyer(wallet.privateKey);
    const payToBefore = await devnet.usdcBalance(devnet.accounts.payTo.address);

    const responses = await Promise.all(
      Array.from({ length: 4 }, () =>
        buyer.pay(`${seller.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: chatBody,
        }),
      ),
    );
    const texts = await Promise.all(responses.map((response) => response.text()));
    assert.equal(buyer.payloads.length, 4);
    assert.ok(
      buyer.payloads.every((payload) => permitNonceOf(payload) === "0"),
      "every payment carried a permit on the token's nonce 0",
    );
    const paid = responses.filter((response) => response.status === 200).length;
    assert.ok(paid >= 1, `one request at least is paid and answered: ${texts.join(" | ")}`);
    for (const [i, response] of responses.entries())
      if (response.status !== 200) assert.equal(response.status, 402, texts[i] ?? "");
    // Who pays what: the seller ran inference only for what the buyer paid; the buyer paid for what it got.
    assert.equal(seller.served, paid, "the seller's handler ran only for the paid requests");
    assert.equal(
      (await devnet.usdcBalance(devnet.accounts.payTo.address)) - payToBefore,
      seller.chargeAtomic * BigInt(paid),
    );
    assert.equal(await devnet.usdcBalance(wallet.address), 10_000_000n - seller.chargeAtomic * BigInt(paid));

    // The settled payment let go of nonce 0: the wallet's next request pays with a permit on nonce 1.
    const next = await buyer.pay(`${seller.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody,
    });
    assert.equal(next.status, 200, await next.clone().text());
    await next.text();
    assert.equal(permitNonceOf(buyer.payloads.at(-1)), "1");
    assert.equal(seller.served, paid + 1);
    assert.equal(
      (await devnet.usdcBalance(devnet.accounts.payTo.address)) - payToBefore,
      seller.chargeAtomic * BigInt(paid + 1),
    );
  });

  test("a settlement sent and not mined in time keeps its permit nonce held: the wallet's next payment on that nonce is refused, not served, until it lands", async () => {
    const { seller } = await startPermitSeller({ receiptTimeoutMs: 1_000 });
    const wallet = await devnet.createFreshBuyer(10_000_000n);
    const buyer = officialBuyer(wallet.privateKey);
    const payToBefore = await devnet.usdcBalance(devnet.accounts.payTo.address);
    const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
    const rpc = (method: string, params: unknown[] = []) =>
      chain.request({ method: method as never, params: params as never });
    const ask = () =>
      buyer.pay(`${seller.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody,
      });

    // The chain stops mining: the first payment's settlement is sent and its receipt does not come in time.
    await rpc("evm_setAutomine", [false]);
    try {
      const first = await ask();
      await first.text();
      assert.equal(seller.served, 1);
      const second = await ask();
      const secondText = await second.text();
      assert.equal(permitNonceOf(buyer.payloads.at(-1)), "0", "the token's nonce is still 0 on chain");
      assert.equal(second.status, 402, secondText);
      assert.equal(seller.served, 1, "the second request, whose permit could not settle, was not served");
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
    await rpc("evm_mine");
    // The first settlement lands: the buyer paid for the one request it got.
    assert.equal(
      (await devnet.usdcBalance(devnet.accounts.payTo.address)) - payToBefore,
      seller.chargeAtomic,
    );
  });

  test("a payment carrying another wallet's permit holds no nonce of that wallet: its own payment on the permit is still verified", async () => {
    const { facilitator, seller } = await startPermitSeller();
    const offered = await fetch(`${seller.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody,
    });
    await offered.text();
    const required = decodePaymentRequiredHeader(offered.headers.get("payment-required"));
    assert.ok(required.ok);
    // The victim signs a payment with a permit (seen by whoever it sent it to), not yet verified anywhere.
    const victim = await devnet.createFreshBuyer(10_000_000n);
    const victimPayment = await new x402Client()
      .register(
        devnet.network,
        new UptoEvmScheme(privateKeyToAccount(victim.privateKey), { rpcUrl: devnet.rpcUrl }),
      )
      .setSpendControls(false)
      .createPaymentPayload(required.paymentRequired);
    assert.ok(victimPayment.extensions?.eip2612GasSponsoring, "the victim's payment carries a permit");

    // An attacker pays an exact EIP-3009 authorization of its own, with the victim's permit attached.
    const attacker = await devnet.createFreshBuyer(10_000_000n);
    const exactRequirements = {
      ...victimPayment.accepted,
      scheme: "exact",
      amount: "1000",
      extra: { name: "USD Coin", version: "2" },
    };
    const attackerPayment = await new x402Client()
      .register(devnet.network, new ExactEvmScheme(privateKeyToAccount(attacker.privateKey)))
      .setSpendControls(false)
      .createPaymentPayload({ ...required.paymentRequired, accepts: [exactRequirements] });
    const attack = await facilitator.verify(
      {
        ...attackerPayment,
        extensions: { eip2612GasSponsoring: victimPayment.extensions.eip2612GasSponsoring },
      },
      exactRequirements,
    );
    assert.ok(attack.isValid, JSON.stringify(attack));

    const verified = await facilitator.verify(victimPayment, victimPayment.accepted);
    assert.deepEqual(
      { isValid: verified.isValid, invalidReason: verified.invalidReason },
      { isValid: true, invalidReason: undefined },
    );
  });
});

describe("POST /release on tollgate facilitator: a seller gives up a verified payment it will not settle", () => {
  /** Payments of one fresh wallet, each with a permit on the token's nonce 0, signed on `seller`'s offer. */
  async function signedPermitPayments(seller: { url: string }, count: number) {
    const offered = await fetch(`${seller.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody,
    });
    await offered.text();
    const required = decodePaymentRequiredHeader(offered.headers.get("payment-required"));
    assert.ok(required.ok);
    const wallet = await devnet.createFreshBuyer(10_000_000n);
    const client = new x402Client()
      .register(
        devnet.network,
        new UptoEvmScheme(privateKeyToAccount(wallet.privateKey), { rpcUrl: devnet.rpcUrl }),
      )
      .setSpendControls(false);
    const payments: PaymentPayload[] = [];
    for (let i = 0; i < count; i++)
      payments.push((await client.createPaymentPayload(required.paymentRequired)) as PaymentPayload);
    assert.ok(payments.every((payment) => permitNonceOf(payment) === "0"));
    return { wallet, payments };
  }

  /** Posts a payment to one of the facilitator's routes, as a seller does (with its token unless told). */
  async function call(
    url: string,
    route: string,
    payment: PaymentPayload,
    { amount, auth = true }: { amount?: string; auth?: boolean } = {},
  ) {
    const response = await fetch(`${url}${route}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(auth ? facilitatorAuth : {}) },
      body: JSON.stringify({
        x402Version: 2,
        paymentPayload: payment,
        paymentRequirements: { ...payment.accepted, ...(amount ? { amount } : {}) },
      }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  test("frees the nonce for the payer's next payment, only for the payment itself and only with the token; the released payment is then not settled while the next holds the nonce", async () => {
    const { served, seller } = await startPermitSeller();
    const { wallet, payments } = await signedPermitPayments(seller, 2);
    const [first, next] = payments as [PaymentPayload, PaymentPayload];
    const payToBefore = await devnet.usdcBalance(devnet.accounts.payTo.address);

    assert.equal((await call(served.url, "/verify", first)).body.isValid, true);
    assert.equal(
      (await call(served.url, "/verify", next)).body.invalidReason,
      "tollgate_eip2612_permit_in_flight",
    );
    // Nobody but a seller holding the token releases anything: the payer cannot free its own nonce.
    assert.equal((await call(served.url, "/release", first, { auth: false })).status, 401);
    // A release names the payment that holds: another payment of the payer frees nothing.
    assert.deepEqual((await call(served.url, "/release", next)).body, {
      released: false,
      reason: "not_held",
    });
    assert.equal(
      (await call(served.url, "/verify", next)).body.invalidReason,
      "tollgate_eip2612_permit_in_flight",
    );

    // The seller gives the first up: the payer's next payment on the nonce is verified.
    assert.deepEqual((await call(served.url, "/release", first)).body, { released: true });
    assert.deepEqual((await call(served.url, "/release", first)).body, {
      released: false,
      reason: "not_held",
    });
    assert.equal((await call(served.url, "/verify", next)).body.isValid, true);
    // The released payment, settled anyway, would land its permit first and leave the next unpaid: refused, nothing sent.
    const late = await call(served.url, "/settle", first, { amount: "700" });
    assert.equal(late.body.success, false);
    assert.equal(late.body.errorReason, "tollgate_eip2612_permit_in_flight");
    assert.equal(await devnet.usdcBalance(wallet.address), 10_000_000n);

    // Who pays what: the payer pays the payment it was served, once; the released one costs it nothing.
    const settled = await call(served.url, "/settle", next, { amount: "900" });
    assert.equal(settled.body.success, true, JSON.stringify(settled.body));
    assert.equal(await devnet.usdcBalance(wallet.address), 10_000_000n - 900n);
    assert.equal((await devnet.usdcBalance(devnet.accounts.payTo.address)) - payToBefore, 900n);
  });

  test("settles a payment whose hold was lost in a restart, though the payer's next payment holds the nonce: only a payment its seller released is refused at settle", async () => {
    const { served, seller } = await startPermitSeller();
    const { wallet, payments } = await signedPermitPayments(seller, 2);
    const [first, next] = payments as [PaymentPayload, PaymentPayload];
    assert.equal((await call(served.url, "/verify", first)).body.isValid, true);
    // The facilitator restarts (its holds were in memory): the payer's next payment is verified on the nonce.
    const { served: restarted } = await startPermitSeller();
    assert.equal((await call(restarted.url, "/verify", next)).body.isValid, true);
    // The first was served and never released: its seller is paid, once.
    const settled = await call(restarted.url, "/settle", first, { amount: "700" });
    assert.equal(settled.body.success, true, JSON.stringify(settled.body));
    assert.equal(await devnet.usdcBalance(wallet.address), 10_000_000n - 700n);
  });

  test("keeps the nonce held for a payment verified in two requests until both let go: one release does not free it while the other may be served", async () => {
    const { served, seller } = await startPermitSeller();
    const { wallet, payments } = await signedPermitPayments(seller, 2);
    const [first, next] = payments as [PaymentPayload, PaymentPayload];

    // The buyer sends one payment twice: a seller serves one request and drops the other after verify.
    assert.equal((await call(served.url, "/verify", first)).body.isValid, true);
    assert.equal((await call(served.url, "/verify", first)).body.isValid, true);
    assert.deepEqual((await call(served.url, "/release", first)).body, {
      released: false,
      reason: "verified_again",
    });
    assert.equal(
      (await call(served.url, "/verify", next)).body.invalidReason,
      "tollgate_eip2612_permit_in_flight",
      "the payment served still holds the nonce",
    );
    // Who pays what: the payer pays the request it was served, once.
    const settled = await call(served.url, "/settle", first, { amount: "700" });
    assert.equal(settled.body.success, true, JSON.stringify(settled.body));
    assert.equal(await devnet.usdcBalance(wallet.address), 10_000_000n - 700n);
  });

  test("gives the nonce back once every request that verified a payment let go of it", async () => {
    const { served, seller } = await startPermitSeller();
    const { payments } = await signedPermitPayments(seller, 2);
    const [first, next] = payments as [PaymentPayload, PaymentPayload];
    assert.equal((await call(served.url, "/verify", first)).body.isValid, true);
    assert.equal((await call(served.url, "/verify", first)).body.isValid, true);
    assert.equal((await call(served.url, "/release", first)).body.released, false);
    assert.deepEqual((await call(served.url, "/release", first)).body, { released: true });
    assert.equal((await call(served.url, "/verify", next)).body.isValid, true);
  });

  test("leaves the nonce held once the payment's settle began: a settlement sent and not yet mined may still land", async () => {
    const { served, seller } = await startPermitSeller({ receiptTimeoutMs: 1_000 });
    const { wallet, payments } = await signedPermitPayments(seller, 2);
    const [first, next] = payments as [PaymentPayload, PaymentPayload];
    const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
    const rpc = (method: string, params: unknown[] = []) =>
      chain.request({ method: method as never, params: params as never });

    assert.equal((await call(served.url, "/verify", first)).body.isValid, true);
    await rpc("evm_setAutomine", [false]);
    try {
      const pending = await call(served.url, "/settle", first, { amount: "700" });
      assert.equal(pending.body.success, false);
      assert.equal(pending.body.errorReason, "settlement_pending");
      assert.deepEqual((await call(served.url, "/release", first)).body, {
        released: false,
        reason: "settling",
      });
      assert.equal(
        (await call(served.url, "/verify", next)).body.invalidReason,
        "tollgate_eip2612_permit_in_flight",
        "the next payment on the nonce is still refused",
      );
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
    await rpc("evm_mine");
    // The first settlement lands: the payer pays it once.
    assert.equal(await devnet.usdcBalance(wallet.address), 10_000_000n - 700n);
  });
});
