import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type EIP712SignedReceipt,
  extractReceiptFromResponse,
  verifyReceiptSignatureEIP712,
} from "@x402/extensions/offer-receipt";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createPayingFetch, openSpendStore, type PayingFetch, type SpendStore } from "../src/buyer/index.js";
import { createFacilitator } from "../src/facilitator/index.js";
import { costAtomic, formatMoney } from "../src/pricing/index.js";
import {
  checkSignedReceipts,
  decodePaymentResponseHeader,
  parseReceiptEvent,
  type SignedUsageReceipt,
  signedReceiptsOf,
  signUsageReceipt,
} from "../src/protocol/index.js";
import { chatRequest, eventLog, tempDataDir } from "./support/buyerFixtures.js";
import { startDishonestSeller } from "./support/dishonestSeller.js";
import {
  expectedCharge,
  type GatewayHarness,
  officialPayingFetch,
  startGatewayHarness,
  testPrices,
} from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { sseEvents } from "./support/paidRequests.js";
import { runCli } from "./support/runCli.js";

/** The extra model's prices: per second of backend time, and per request. */
const PER_SECOND_ATOMIC = 3_600n;
const FEE_ATOMIC = 777n;
/** The image model's price of one 1024x1024 image in hd. */
const HD_IMAGE_ATOMIC = 80_000n;

const sellerKey = generatePrivateKey();
const sellerAddress = privateKeyToAccount(sellerKey).address;

let h: GatewayHarness;
let dataDir: Awaited<ReturnType<typeof tempDataDir>>;
const opened: PayingFetch[] = [];
const closers: Array<() => Promise<void>> = [];

before(async () => {
  h = await startGatewayHarness({
    configure: (input) => ({ ...input, receipts: { signingKey: sellerKey } }),
    extraModels: (baseUrl) => [
      {
        id: "mock-gpu",
        backend: { baseUrl },
        prices: { compute_ms: PER_SECOND_ATOMIC.toString(), requests: FEE_ATOMIC.toString() },
        maxOutputTokens: 64,
        tokenizer: "gpt-4o",
      },
      {
        id: "mock-image",
        kind: "image",
        backend: { baseUrl },
        imagePrices: { "256x256": "10000", "1024x1024": "40000", "1024x1024/hd": HD_IMAGE_ATOMIC.toString() },
      },
    ],
  });
  dataDir = await tempDataDir();
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  for (const close of closers.reverse()) await close();
  await h?.close();
  await dataDir?.remove();
});

function buyerFetch(buyer: number, options: Partial<Parameters<typeof createPayingFetch>[0]> = {}) {
  const payingFetch = createPayingFetch({
    privateKey: h.devnet.accounts.buyers[buyer]!.privateKey,
    dataDir: dataDir.path,
    ...options,
  });
  opened.push(payingFetch);
  return payingFetch;
}

const postChat = (payingFetch: typeof fetch, extra: Record<string, unknown> = {}) =>
  payingFetch(`${h.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: chatRequest(extra),
  });

/** A stream's receipt event, read as the buyer reads it. */
async function streamReceipt(response: Response) {
  const events = sseEvents(await response.text());
  const found = events.map((event) => parseReceiptEvent(event.data)).find((parsed) => parsed.ok);
  assert.ok(found?.ok, "the stream ends with a receipt event");
  return found.receipt;
}

describe("signed receipts", () => {
  test("GET /v1/models publishes the receipt key", async () => {
    const listing = (await (await fetch(`${h.gateway.url}/v1/models`)).json()) as {
      data: Array<{ pricing: { receiptSigner?: string } }>;
    };
    assert.equal(listing.data[0]?.pricing.receiptSigner, sellerAddress);
  });

  test("a JSON answer's PAYMENT-RESPONSE carries receipts the official verifier accepts, paid by the official client", async () => {
    h.backend.set({ responseTokens: 12, tokensPerSecond: 0 });
    const buyer = h.devnet.accounts.buyers[0]!;
    const response = await postChat(officialPayingFetch(buyer.privateKey, h.devnet.network));
    assert.equal(response.status, 200);
    const completion = (await response.json()) as {
      usage: { prompt_tokens: number; completion_tokens: number };
    };

    const offerReceipt = extractReceiptFromResponse(response) as EIP712SignedReceipt | undefined;
    assert.ok(offerReceipt, "the official extractor finds the x402 receipt");
    assert.equal(offerReceipt.format, "eip712");
    const verified = await verifyReceiptSignatureEIP712(offerReceipt);
    assert.equal(verified.signer, sellerAddress, "signed by the published key");
    assert.equal(verified.payload.payer.toLowerCase(), buyer.address.toLowerCase());

    const settlement = decodePaymentResponseHeader(response.headers.get("payment-response"));
    assert.ok(settlement.ok);
    assert.equal(verified.payload.transaction, settlement.settleResponse.transaction);
    const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
    const check = await checkSignedReceipts(settlement.settleResponse.extensions, {
      signer: sellerAddress,
      payer: buyer.address,
      network: h.devnet.network,
      transaction: settlement.settleResponse.transaction,
      chargeAtomic: charge,
    });
    assert.deepEqual(check.problems, []);
    assert.equal(check.status, "verified");
    const usage = check.usageReceipt?.payload;
    assert.equal(usage?.chargeAtomic, charge.toString());
    assert.deepEqual(usage?.usage, [
      { unit: "input_tokens", amount: String(completion.usage.prompt_tokens) },
      { unit: "output_tokens", amount: String(completion.usage.completion_tokens) },
      { unit: "requests", amount: "1" },
    ]);
    assert.equal(usage?.route, "/v1/chat/completions");
    assert.equal(check.justifiedAtomic, charge, "the signed usage at the signed prices is the charge");
  });

  test("a usage receipt states every unit its charge was computed from, at its price per million: a model priced per second and per request is justified exactly", async () => {
    h.backend.set({ responseTokens: 12, tokensPerSecond: 400 });
    const buyer = h.devnet.accounts.buyers[0]!;
    const response = await officialPayingFetch(buyer.privateKey, h.devnet.network)(
      `${h.gateway.url}/v1/chat/completions`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "mock-gpu",
          messages: [{ role: "user", content: "count" }],
          max_tokens: 20,
        }),
      },
    );
    assert.equal(response.status, 200);
    await response.json();
    const settlement = decodePaymentResponseHeader(response.headers.get("payment-response"));
    assert.ok(settlement.ok);
    const charge = BigInt(settlement.settleResponse.amount ?? "0");
    const check = await checkSignedReceipts(settlement.settleResponse.extensions, {
      signer: sellerAddress,
      payer: buyer.address,
      network: h.devnet.network,
      transaction: settlement.settleResponse.transaction,
      chargeAtomic: charge,
    });
    assert.deepEqual(check.problems, []);
    assert.equal(check.overchargeAtomic, undefined, "the seller's own receipt does not accuse it");
    assert.equal(check.justifiedAtomic, charge, "the receipt's usage at its prices comes to the charge");
    const receipt = check.usageReceipt!.payload;
    const computeMs = BigInt(receipt.usage.find((entry) => entry.unit === "compute_ms")?.amount ?? "0");
    assert.ok(computeMs > 0n, "the backend time is stated");
    assert.ok(
      receipt.prices.some(
        (price) =>
          price.unit === "compute_ms" && price.perMillionAtomic === String(PER_SECOND_ATOMIC * 1000n),
      ),
      JSON.stringify(receipt.prices),
    );
    assert.equal(receipt.fixedFeeAtomic, FEE_ATOMIC.toString());
    assert.equal(charge, (computeMs * PER_SECOND_ATOMIC + 999n) / 1000n + FEE_ATOMIC);
    // tollgate receipts verify states each price per its own unit, in dollars, as the model listing does.
    const file = join(dataDir.path, "per-second.json");
    await writeFile(file, JSON.stringify(settlement.settleResponse));
    const cli = await runCli(["receipts", "verify", file, "--signer", sellerAddress]);
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
    const lines = cli.stdout.split("\n");
    assert.ok(
      lines.includes(
        `  prices  ${formatMoney(PER_SECOND_ATOMIC)} / second of compute, ${formatMoney(FEE_ATOMIC)} / request`,
      ),
      cli.stdout,
    );
    assert.ok(
      lines.includes(
        `  the charge is what this usage costs at these prices (${formatMoney(charge)}), within the maximum.`,
      ),
      cli.stdout,
    );
  });

  test("the buyer checks a per-second model's charge against the seller's signed units and finds nothing to dispute", async () => {
    h.backend.set({ responseTokens: 12, tokensPerSecond: 400 });
    const store = await openSpendStore({ dataDir: "memory://" });
    closers.push(() => store.close());
    const log = eventLog();
    const payingFetch = buyerFetch(1, { store, onEvent: log.onEvent });
    const response = await payingFetch(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "mock-gpu",
        messages: [{ role: "user", content: "count" }],
        max_tokens: 20,
      }),
    });
    assert.equal(response.status, 200);
    await response.json();
    await payingFetch.idle();
    const [receipt] = log.of("receipt");
    assert.ok(receipt, "the payment was booked");
    assert.equal(receipt.signedReceipts.status, "verified");
    assert.ok((receipt.usage?.units?.compute_ms ?? 0) > 0, "the signed usage states the backend time");
    assert.deepEqual(
      await store.disputes({ status: "open" }),
      [],
      "an honest per-second charge is not disputed",
    );
  });

  test("images: the receipt states the images at the price of the size and quality asked for; it justifies the charge and the buyer disputes nothing", async () => {
    const store = await openSpendStore({ dataDir: "memory://" });
    closers.push(() => store.close());
    const log = eventLog();
    const payingFetch = buyerFetch(2, { store, onEvent: log.onEvent });
    const response = await payingFetch(`${h.gateway.url}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "mock-image",
        prompt: "a toll booth",
        n: 2,
        size: "1024x1024",
        quality: "hd",
      }),
    });
    assert.equal(response.status, 200);
    await response.json();
    await payingFetch.idle();
    const settlement = decodePaymentResponseHeader(response.headers.get("payment-response"));
    assert.ok(settlement.ok);
    assert.equal(settlement.settleResponse.amount, String(2n * HD_IMAGE_ATOMIC));
    const check = await checkSignedReceipts(settlement.settleResponse.extensions, {
      signer: sellerAddress,
      payer: h.devnet.accounts.buyers[2]!.address,
      network: h.devnet.network,
      transaction: settlement.settleResponse.transaction,
      chargeAtomic: 2n * HD_IMAGE_ATOMIC,
    });
    assert.deepEqual(check.problems, []);
    assert.equal(check.overchargeAtomic, undefined);
    assert.equal(check.justifiedAtomic, 2n * HD_IMAGE_ATOMIC);
    const receipt = check.usageReceipt!.payload;
    assert.ok(receipt.usage.some((entry) => entry.unit === "images" && entry.amount === "2"));
    assert.ok(
      receipt.prices.some(
        (price) => price.unit === "images" && price.perMillionAtomic === String(HD_IMAGE_ATOMIC * 1_000_000n),
      ),
    );
    const [booked] = log.of("receipt");
    assert.equal(booked?.signedReceipts.status, "verified");
    assert.deepEqual(await store.disputes({ status: "open" }), []);
  });

  test("a stream's receipt event carries both receipts; the buyer verifies them and keeps them with the spend row", async () => {
    h.backend.set({ responseTokens: 20, tokensPerSecond: 0 });
    const log = eventLog();
    const payingFetch = buyerFetch(1, { onEvent: log.onEvent });
    const response = await postChat(payingFetch, { stream: true });
    assert.equal(response.status, 200);
    const receipt = await streamReceipt(response);
    await payingFetch.idle();

    const { offerReceipt, usageReceipt } = signedReceiptsOf(receipt.extensions);
    const verified = await verifyReceiptSignatureEIP712(offerReceipt as EIP712SignedReceipt);
    assert.equal(verified.signer, sellerAddress);
    assert.equal(verified.payload.transaction, receipt.transaction);
    assert.equal((usageReceipt as SignedUsageReceipt).payload.chargeAtomic, receipt.amount);

    const [event] = log.of("receipt");
    assert.equal(event?.source, "stream");
    assert.equal(event?.signedReceipts.status, "verified", event?.signedReceipts.problems.join("; "));
    const row = await (await payingFetch.spendStore()).reservation(event!.paymentId);
    assert.equal(row?.signedReceipts?.status, "verified");
    assert.equal(row?.signedReceipts?.signer, sellerAddress);
    assert.deepEqual(row?.signedReceipts?.usageReceipt, usageReceipt);
    assert.deepEqual(row?.signedReceipts?.offerReceipt, offerReceipt);
  });

  test("the buyer keeps a JSON answer's receipts with its spend row", async () => {
    h.backend.set({ responseTokens: 7, tokensPerSecond: 0 });
    const log = eventLog();
    const payingFetch = buyerFetch(2, { onEvent: log.onEvent });
    const response = await postChat(payingFetch);
    assert.equal(response.status, 200);
    await response.json();
    await payingFetch.idle();
    const [event] = log.of("receipt");
    assert.equal(event?.source, "header");
    const row = await (await payingFetch.spendStore()).reservation(event!.paymentId);
    assert.equal(
      row?.signedReceipts?.status,
      "verified",
      row?.signedReceipts?.problems.join("; ") ?? "no receipts kept",
    );
    assert.ok(row?.signedReceipts, "the receipts are kept with the row");
    const usage = (row.signedReceipts.usageReceipt as SignedUsageReceipt).payload;
    assert.equal(BigInt(usage.chargeAtomic), row?.chargedAtomic);
    assert.equal(row?.transaction, usage.transaction);
  });

  test("tollgate receipts verify: a saved receipt proves what was charged; an altered one exits 1", async () => {
    h.backend.set({ responseTokens: 9, tokensPerSecond: 0 });
    const payingFetch = buyerFetch(0);
    const response = await postChat(payingFetch, { stream: true });
    const receipt = await streamReceipt(response);
    const good = join(dataDir.path, "receipt.json");
    await writeFile(good, JSON.stringify(receipt));
    const ok = await runCli(["receipts", "verify", good, "--gateway", h.gateway.url]);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.match(ok.stdout, /^valid: the x402 receipt and the usage receipt are signed by the receipt key/);
    assert.match(ok.stdout, new RegExp(`\\(${receipt.amount} atomic units`));
    const okLines = ok.stdout.split("\n");
    const [input, output] = [
      formatMoney(testPrices.inputPerMTokAtomic),
      formatMoney(testPrices.outputPerMTokAtomic),
    ];
    assert.ok(
      okLines.includes(
        // Cached input and cache writes at the input price, reasoning at the output price, as the model is priced.
        `  prices  ${input} / 1M input tokens, ${input} / 1M cached input tokens, ${input} / 1M cache-write input tokens, ${output} / 1M output tokens, ${output} / 1M reasoning tokens`,
      ),
      ok.stdout,
    );
    assert.ok(
      okLines.includes(
        `  the charge is what this usage costs at these prices (${formatMoney(BigInt(receipt.amount))}), within the maximum.`,
      ),
      ok.stdout,
    );

    const { usageReceipt } = signedReceiptsOf(receipt.extensions) as { usageReceipt: SignedUsageReceipt };
    const altered = structuredClone(receipt);
    const alteredUsage = signedReceiptsOf(altered.extensions).usageReceipt as SignedUsageReceipt;
    alteredUsage.payload.chargeAtomic = String(BigInt(usageReceipt.payload.chargeAtomic) + 1n);
    const bad = join(dataDir.path, "altered.json");
    await writeFile(bad, JSON.stringify(altered));
    const refused = await runCli(["receipts", "verify", bad, "--signer", sellerAddress]);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stdout, /^NOT VALID/);
    assert.match(
      refused.stdout,
      /usage receipt: signed by 0x[0-9a-fA-F]{40}, not by the seller's published receipt key/,
    );

    // A seller's own words in a receipt it signed reach the terminal written out, not as escape sequences.
    const hostileKey = privateKeyToAccount(generatePrivateKey());
    const hostile = structuredClone(receipt);
    const hostileReceipts = signedReceiptsOf(hostile.extensions);
    const hostileUsage = hostileReceipts.usageReceipt as SignedUsageReceipt;
    hostileUsage.payload.model = "demo\u001b]0;pwned\u0007\u001b[2J";
    hostileUsage.signature = (
      await signUsageReceipt(hostileUsage.payload, (hash) => hostileKey.sign(hash))
    ).signature;
    // Its usage receipt alone, signed by the key the buyer is told to trust.
    const extensions = hostile.extensions as Record<string, { info?: { receipt?: unknown } }>;
    for (const [key, entry] of Object.entries(extensions))
      if (entry.info?.receipt === hostileReceipts.offerReceipt) delete extensions[key];
    const escaped = join(dataDir.path, "hostile.json");
    await writeFile(escaped, JSON.stringify(hostile));
    const shown = await runCli(["receipts", "verify", escaped, "--signer", hostileKey.address]);
    assert.equal(shown.code, 0, shown.stdout + shown.stderr);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: no control character may reach the terminal
    assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(shown.stdout), JSON.stringify(shown.stdout));
    assert.match(shown.stdout, /model demo\\u001b\]0;pwned\\u0007\\u001b\[2J on /);
  });

  test("tollgate pay --json hands out the receipts in full, and tollgate receipts verify accepts them", async () => {
    h.backend.set({ responseTokens: 5, tokensPerSecond: 0 });
    // Its own spend store: this process holds the other one open.
    const cliDataDir = await tempDataDir();
    closers.push(() => cliDataDir.remove());
    const paid = await runCli(
      ["pay", "--url", `${h.gateway.url}/v1/chat/completions`, "--body", chatRequest(), "--json"],
      {
        TOLLGATE_PRIVATE_KEY: h.devnet.accounts.buyers[1]!.privateKey,
        TOLLGATE_DATA_DIR: cliDataDir.path,
      },
    );
    assert.equal(paid.code, 0, paid.stderr);
    const output = JSON.parse(paid.stdout) as {
      payment: { signedReceipts: { status: string; usageReceipt: unknown } };
    };
    assert.equal(output.payment.signedReceipts.status, "verified");
    assert.ok(output.payment.signedReceipts.usageReceipt, "the usage receipt itself, not only its status");
    const file = join(dataDir.path, "paid.json");
    await writeFile(file, paid.stdout);
    const verified = await runCli(["receipts", "verify", file, "--signer", sellerAddress, "--json"]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const report = JSON.parse(verified.stdout) as {
      valid: boolean;
      status: string;
      signer: string;
      justifiedAtomic: string;
      usageReceipt: { payload: { chargeAtomic: string; prices: Array<{ perMillionAtomic: string }> } };
    };
    assert.equal(report.valid, true);
    // --json keeps the atomic units the receipt was signed in.
    assert.equal(report.justifiedAtomic, report.usageReceipt.payload.chargeAtomic);
    assert.equal(
      report.usageReceipt.payload.prices[0]?.perMillionAtomic,
      testPrices.inputPerMTokAtomic.toString(),
    );
    assert.equal(report.status, "verified");
    assert.equal(report.signer, sellerAddress);
  });

  test("tollgate chat --json hands out a stream's receipts in full, and tollgate receipts verify accepts them", async () => {
    h.backend.set({ responseTokens: 5, tokensPerSecond: 0 });
    const cliDataDir = await tempDataDir();
    closers.push(() => cliDataDir.remove());
    const chatted = await runCli(
      ["chat", "--gateway", h.gateway.url, "--model", mockModelId, "--max-tokens", "8", "--json", "hello"],
      {
        TOLLGATE_PRIVATE_KEY: h.devnet.accounts.buyers[1]!.privateKey,
        TOLLGATE_DATA_DIR: cliDataDir.path,
      },
    );
    assert.equal(chatted.code, 0, chatted.stderr);
    const output = JSON.parse(chatted.stdout) as {
      payment: { source: string; signedReceipts: { status: string; usageReceipt: unknown } };
    };
    assert.equal(output.payment.source, "stream");
    assert.equal(output.payment.signedReceipts.status, "verified");
    assert.ok(output.payment.signedReceipts.usageReceipt, "the usage receipt itself, not only its status");
    const file = join(dataDir.path, "chatted.json");
    await writeFile(file, chatted.stdout);
    const verified = await runCli(["receipts", "verify", file, "--signer", sellerAddress, "--json"]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.equal((JSON.parse(verified.stdout) as { valid: boolean }).valid, true);
  });

  test("an overcharge dispute carries the seller's signed statement, which proves the overcharge", async () => {
    const prices = { inputPerMTokAtomic: 3_000_000n, outputPerMTokAtomic: 15_000_000n, fixedFeeAtomic: 0n };
    const usage = { promptTokens: 9, completionTokens: 20 };
    const honestCharge = costAtomic(usage, { ...prices, maxOutputTokens: 1 });
    const facilitator = createFacilitator({
      rpcUrl: h.devnet.rpcUrl,
      privateKey: h.devnet.accounts.facilitator.privateKey,
      network: h.devnet.network,
      pollingIntervalMs: 20,
    });
    const dishonestKey = generatePrivateKey();
    const seller = await startDishonestSeller({
      facilitator,
      asset: h.devnet.contracts.usdc,
      payTo: h.devnet.accounts.payTo.address,
      prices,
      usage,
      overchargeAtomic: 500n,
      receiptKey: dishonestKey,
    });
    closers.push(seller.close);
    const store: SpendStore = await openSpendStore({ dataDir: "memory://" });
    closers.push(() => store.close());
    const payingFetch = buyerFetch(2, { store });
    const response = await payingFetch(`${seller.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "any-model",
        messages: [{ role: "user", content: "hello" }],
        max_tokens: 100,
      }),
    });
    assert.equal(response.status, 200);
    await response.json();
    await payingFetch.idle();

    const [dispute] = await store.disputes({ status: "open" });
    assert.ok(dispute, "the overcharge is disputed");
    assert.equal(dispute.chargedAtomic, honestCharge + 500n);
    const statement = dispute.details.sellerStatement as {
      status: string;
      signer: string;
      usageReceipt: SignedUsageReceipt;
    };
    assert.equal(statement.status, "verified", "signed by the key the seller publishes");
    assert.equal(statement.signer, privateKeyToAccount(dishonestKey).address);
    assert.equal(statement.usageReceipt.payload.chargeAtomic, String(honestCharge + 500n));

    const file = join(dataDir.path, "dispute.json");
    await writeFile(file, JSON.stringify(dispute.details));
    const cli = await runCli(["receipts", "verify", file, "--gateway", seller.url]);
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /^valid: /);
    assert.ok(
      cli.stdout.includes(
        `OVERCHARGE: the seller's own signed usage at its own prices comes to ${formatMoney(honestCharge)}, yet it charged ${formatMoney(honestCharge + 500n)} (${formatMoney(500n)} too much).`,
      ),
      cli.stdout,
    );
  });
});
