import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import type { HTTPFacilitatorClient } from "@x402/core/http";
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from "@x402/core/types";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { type Address, createPublicClient, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import {
  createFacilitator,
  createFacilitatorApp,
  createFacilitatorClient,
  facilitatorRelaysApprovals,
  serveFacilitator,
} from "../src/facilitator/index.js";
import { facilitatorAuth, TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";
import { startGatewayHarness } from "./support/gatewayHarness.js";
import { signUptoPayload } from "./support/uptoSigning.js";

let devnet: Devnet;
let server: Awaited<ReturnType<typeof serveFacilitator>>;
let client: HTTPFacilitatorClient;
let facilitatorAddress: Address;

before(async () => {
  devnet = await startDevnet({ buyers: 3 });
  const facilitator = createFacilitator({
    rpcUrl: devnet.rpcUrl,
    privateKey: devnet.accounts.facilitator.privateKey,
    network: devnet.network,
    pollingIntervalMs: 20,
  });
  server = await serveFacilitator({ facilitator, token: TEST_FACILITATOR_TOKEN, port: 0 });
  client = createFacilitatorClient({ url: server.url, token: TEST_FACILITATOR_TOKEN });
  const supported = await client.getSupported();
  const upto = supported.kinds.find((kind) => kind.scheme === "upto" && kind.network === devnet.network);
  assert.ok(upto, "upto is advertised for the devnet");
  facilitatorAddress = upto.extra?.facilitatorAddress as Address;
});

after(async () => {
  await server?.close();
  await devnet?.stop();
});

function uptoRequirements(
  amount: bigint,
  payTo: Address = devnet.accounts.payTo.address,
): PaymentRequirements {
  return {
    scheme: "upto",
    network: devnet.network,
    asset: devnet.contracts.usdc,
    amount: amount.toString(),
    payTo,
    maxTimeoutSeconds: 300,
    extra: { name: "USD Coin", version: "2", facilitatorAddress },
  } as PaymentRequirements;
}

/** Signs with the official x402 client and `@x402/evm`'s UptoEvmScheme / ExactEvmScheme. */
async function officialPayload(privateKey: Hex, requirements: PaymentRequirements): Promise<PaymentPayload> {
  const signer = privateKeyToAccount(privateKey);
  const buyer = x402Client.fromConfig({
    schemes: [
      { network: devnet.network, client: new UptoEvmScheme(signer) },
      { network: devnet.network, client: new ExactEvmScheme(signer) },
    ],
    spendControls: false,
  });
  const paymentRequired: PaymentRequired = {
    x402Version: 2,
    resource: {
      url: "http://127.0.0.1/v1/chat/completions",
      description: "test",
      mimeType: "application/json",
    },
    accepts: [requirements],
  } as PaymentRequired;
  return buyer.createPaymentPayload(paymentRequired);
}

describe("facilitator over HTTP with the official x402 client", () => {
  test("advertises upto with the facilitator address, and exact", async () => {
    const supported = await client.getSupported();
    const schemes = supported.kinds.filter((k) => k.network === devnet.network).map((k) => k.scheme);
    assert.ok(schemes.includes("upto") && schemes.includes("exact"));
    assert.equal(facilitatorAddress.toLowerCase(), devnet.accounts.facilitator.address.toLowerCase());
  });

  test("settles 40% of the maximum: exactly that moves, once", async () => {
    const buyer = devnet.accounts.buyers[0]!;
    const max = 100_000n;
    const requirements = uptoRequirements(max);
    const payload = await officialPayload(buyer.privateKey, requirements);
    const verified = await client.verify(payload, requirements);
    assert.equal(verified.isValid, true, String(verified.invalidReason));

    const buyerBefore = await devnet.usdcBalance(buyer.address);
    const payToBefore = await devnet.usdcBalance(devnet.accounts.payTo.address);
    const actual = (max * 40n) / 100n;
    const settled = await client.settle(payload, { ...requirements, amount: actual.toString() });
    assert.equal(settled.success, true, String(settled.errorReason));
    assert.match(settled.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(settled.amount, actual.toString());
    assert.equal(await devnet.usdcBalance(buyer.address), buyerBefore - actual);
    assert.equal(await devnet.usdcBalance(devnet.accounts.payTo.address), payToBefore + actual);

    const again = await client.settle(payload, { ...requirements, amount: actual.toString() });
    assert.equal(again.transaction, settled.transaction, "the first result is returned");
    assert.equal(await devnet.usdcBalance(buyer.address), buyerBefore - actual, "nothing more moves");
  });

  test("refuses a settle above the signed maximum", async () => {
    const buyer = devnet.accounts.buyers[1]!;
    const requirements = uptoRequirements(50_000n);
    const payload = await officialPayload(buyer.privateKey, requirements);
    const before = await devnet.usdcBalance(buyer.address);
    const settled = await client.settle(payload, { ...requirements, amount: "50001" });
    assert.equal(settled.success, false);
    assert.equal(settled.errorReason, "invalid_upto_evm_payload_settlement_exceeds_amount");
    assert.equal(await devnet.usdcBalance(buyer.address), before);
  });

  test("a zero settle succeeds with no transaction and no balance change", async () => {
    const buyer = devnet.accounts.buyers[1]!;
    const requirements = uptoRequirements(50_000n);
    const payload = await officialPayload(buyer.privateKey, requirements);
    const before = await devnet.usdcBalance(buyer.address);
    const settled = await client.settle(payload, { ...requirements, amount: "0" });
    assert.equal(settled.success, true, String(settled.errorReason));
    assert.equal(settled.transaction, "");
    assert.equal(await devnet.usdcBalance(buyer.address), before);
  });

  test("a settle someone else sent first does not pass for the seller's: a zero one leaves the authorization to settle, another amount is refused", async () => {
    const buyer = devnet.accounts.buyers[2]!;
    const requirements = uptoRequirements(50_000n);
    const charge = 20_000n;
    // The buyer settles its own authorization for nothing, then the seller settles the charge.
    const zeroFirst = await officialPayload(buyer.privateKey, requirements);
    const before = await devnet.usdcBalance(buyer.address);
    const zero = await client.settle(zeroFirst, { ...requirements, amount: "0" });
    assert.equal(zero.success, true, String(zero.errorReason));
    const seller = await client.settle(zeroFirst, { ...requirements, amount: charge.toString() });
    assert.equal(seller.success, true, String(seller.errorReason));
    assert.match(seller.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(seller.amount, charge.toString());
    assert.equal(await devnet.usdcBalance(buyer.address), before - charge, "the charge moved");

    // The buyer settles 1 first, its nonce written another way: the seller's settle is refused, not
    // answered with the buyer's transaction (the seller books a debt), and nothing more moves.
    const oneFirst = await officialPayload(buyer.privateKey, requirements);
    const inner = oneFirst.payload as { permit2Authorization: { nonce: string } };
    const renamed = {
      ...oneFirst,
      payload: {
        ...inner,
        permit2Authorization: {
          ...inner.permit2Authorization,
          nonce: `0x${BigInt(inner.permit2Authorization.nonce).toString(16)}`,
        },
      },
    } as PaymentPayload;
    const middle = await devnet.usdcBalance(buyer.address);
    const one = await client.settle(oneFirst, { ...requirements, amount: "1" });
    assert.equal(one.success, true, String(one.errorReason));
    for (const payload of [oneFirst, renamed]) {
      const refused = await client.settle(payload, { ...requirements, amount: charge.toString() });
      assert.equal(refused.success, false);
      assert.equal(refused.errorReason, "settled_for_another_amount");
      assert.match(refused.errorMessage ?? "", /already settled for 1, not 20000/);
    }
    assert.equal(await devnet.usdcBalance(buyer.address), middle - 1n);
  });

  test("a facilitator told its tokens refuses a payment in another before any transaction", async () => {
    const restricted = createFacilitator({
      rpcUrl: devnet.rpcUrl,
      privateKey: (await devnet.createBuyer(0n)).privateKey,
      network: devnet.network,
      pollingIntervalMs: 20,
      assets: [devnet.contracts.usdc],
    });
    const buyer = devnet.accounts.buyers[0]!;
    // A token of the payer's own choosing: its transferFrom could do anything at the facilitator's gas.
    const requirements = { ...uptoRequirements(10_000n), asset: devnet.accounts.payTo.address };
    const payload = await officialPayload(buyer.privateKey, requirements);
    const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
    const nonceBefore = await chain.getTransactionCount({ address: restricted.address });
    const verified = await restricted.verify(payload, requirements);
    assert.equal(verified.isValid, false);
    assert.equal(verified.invalidReason, "asset_not_accepted");
    const settled = await restricted.settle(payload, requirements);
    assert.equal(settled.success, false);
    assert.equal(settled.errorReason, "asset_not_accepted");
    assert.match(settled.errorMessage ?? "", /moves only 0x[0-9a-f]{40} on eip155:31337/);
    assert.equal(await chain.getTransactionCount({ address: restricted.address }), nonceBefore);
    // Its own token it settles as any facilitator.
    const usdcRequirements = {
      ...uptoRequirements(10_000n),
      extra: { name: "USD Coin", version: "2", facilitatorAddress: restricted.address },
    } as PaymentRequirements;
    const paid = await restricted.settle(await officialPayload(buyer.privateKey, usdcRequirements), {
      ...usdcRequirements,
      amount: "10",
    });
    assert.equal(paid.success, true, String(paid.errorReason));
  });

  test("refuses an expired and a not-yet-valid authorization", async () => {
    const buyer = devnet.accounts.buyers[2]!;
    const requirements = uptoRequirements(10_000n);
    const now = BigInt(Math.floor(Date.now() / 1000));
    const expired = await signUptoPayload({
      privateKey: buyer.privateKey,
      requirements,
      chainId: devnet.chainId,
      deadline: now - 10n,
    });
    const expiredResult = await client.verify(expired, requirements);
    assert.equal(expiredResult.isValid, false);
    assert.equal(expiredResult.invalidReason, "permit2_deadline_expired");
    const early = await signUptoPayload({
      privateKey: buyer.privateKey,
      requirements,
      chainId: devnet.chainId,
      validAfter: now + 3600n,
    });
    const earlyResult = await client.verify(early, requirements);
    assert.equal(earlyResult.isValid, false);
    assert.equal(earlyResult.invalidReason, "permit2_not_yet_valid");
    const settled = await client.settle(early, { ...requirements, amount: "5000" });
    assert.equal(settled.success, false);
  });

  test("refuses a payment signed to another payTo", async () => {
    const buyer = devnet.accounts.buyers[2]!;
    const signedFor = uptoRequirements(10_000n);
    const payload = await officialPayload(buyer.privateKey, signedFor);
    const elsewhere = uptoRequirements(10_000n, devnet.accounts.deployer.address);
    const result = await client.verify(payload, elsewhere);
    assert.equal(result.isValid, false);
    assert.equal(result.invalidReason, "invalid_permit2_recipient_mismatch");
  });

  test("refuses a payer without funds, naming the reason", async () => {
    const poor = await devnet.createBuyer(1_000n);
    const requirements = uptoRequirements(50_000n);
    const payload = await officialPayload(poor.privateKey, requirements);
    const result = await client.verify(payload, requirements);
    assert.equal(result.isValid, false);
    assert.equal(result.invalidReason, "permit2_insufficient_balance");
  });

  test("exact with EIP-3009 moves the fixed amount once", async () => {
    const buyer = devnet.accounts.buyers[0]!;
    const requirements = {
      scheme: "exact",
      network: devnet.network,
      asset: devnet.contracts.usdc,
      amount: "12345",
      payTo: devnet.accounts.payTo.address,
      maxTimeoutSeconds: 300,
      extra: { name: "USD Coin", version: "2" },
    } as PaymentRequirements;
    const payload = await officialPayload(buyer.privateKey, requirements);
    assert.ok("authorization" in (payload.payload as object), "signed as EIP-3009");
    const verified = await client.verify(payload, requirements);
    assert.equal(verified.isValid, true, String(verified.invalidReason));
    const before = await devnet.usdcBalance(buyer.address);
    const settled = await client.settle(payload, requirements);
    assert.equal(settled.success, true, String(settled.errorReason));
    assert.equal(await devnet.usdcBalance(buyer.address), before - 12_345n);
    const again = await client.settle(payload, requirements);
    assert.equal(again.transaction, settled.transaction);
    assert.equal(await devnet.usdcBalance(buyer.address), before - 12_345n);
  });

  test("50 concurrent settles from one facilitator key all succeed", async () => {
    const buyers = devnet.accounts.buyers;
    const payloads = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const requirements = uptoRequirements(1_000n);
        const payload = await officialPayload(buyers[i % buyers.length]!.privateKey, requirements);
        return { payload, requirements: { ...requirements, amount: "700" } };
      }),
    );
    const payToBefore = await devnet.usdcBalance(devnet.accounts.payTo.address);
    const results = await Promise.all(
      payloads.map(({ payload, requirements }) => client.settle(payload, requirements)),
    );
    const failures = results.filter((r) => !r.success).map((r) => r.errorReason);
    assert.deepEqual(failures, []);
    assert.equal(new Set(results.map((r) => r.transaction)).size, 50);
    assert.equal(await devnet.usdcBalance(devnet.accounts.payTo.address), payToBefore + 50n * 700n);
  });

  test("concurrent settles of one payer beyond what it holds send one transaction, not reverted ones at the facilitator's gas", async () => {
    const payer = await devnet.createBuyer(1_000n);
    const payloads = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const requirements = uptoRequirements(1_000n);
        return { payload: await officialPayload(payer.privateKey, requirements), requirements };
      }),
    );
    const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
    const sent = () => chain.getTransactionCount({ address: facilitatorAddress });
    const sentBefore = await sent();
    const results = await Promise.all(
      payloads.map(({ payload, requirements }) => client.settle(payload, requirements)),
    );
    assert.equal(results.filter((result) => result.success).length, 1);
    assert.equal(await devnet.usdcBalance(payer.address), 0n);
    assert.equal(await sent(), sentBefore + 1, "one transaction: the others were refused by simulation");
  });
});

describe("facilitator key shared with another sender", () => {
  test("a nonce used elsewhere is re-read and the settle goes through, once", async () => {
    // A second facilitator on the same key (e.g. an old instance still running) sends in between.
    const other = createFacilitator({
      rpcUrl: devnet.rpcUrl,
      privateKey: devnet.accounts.facilitator.privateKey,
      network: devnet.network,
      pollingIntervalMs: 20,
    });
    const payToBefore = await devnet.usdcBalance(devnet.accounts.payTo.address);
    const transactions: string[] = [];
    for (let i = 0; i < 4; i++) {
      const requirements = uptoRequirements(1_000n);
      const payload = await officialPayload(devnet.accounts.buyers[i % 3]!.privateKey, requirements);
      const result =
        i % 2 === 0
          ? await client.settle(payload, { ...requirements, amount: "300" })
          : await other.settle(payload, { ...requirements, amount: "300" });
      assert.equal(result.success, true, `settle ${i}: ${result.errorReason}`);
      transactions.push(result.transaction);
    }
    assert.equal(new Set(transactions).size, 4);
    assert.equal(await devnet.usdcBalance(devnet.accounts.payTo.address), payToBefore + 4n * 300n);
  });
});

describe("facilitator HTTP edges", () => {
  test("a gateway given no token, or the wrong one, for a tollgate facilitator does not start, and says what to set", async () => {
    // Each start meets a facilitator of its own (its own port): no socket of an earlier refusal is reused.
    const ownFacilitator = async () => {
      const served = await serveFacilitator({
        facilitator: createFacilitator({
          rpcUrl: devnet.rpcUrl,
          privateKey: devnet.accounts.facilitator.privateKey,
          network: devnet.network,
          pollingIntervalMs: 20,
        }),
        token: TEST_FACILITATOR_TOKEN,
        port: 0,
      });
      return served;
    };
    for (const token of [undefined, "not-the-token-0123456789"]) {
      const served = await ownFacilitator();
      try {
        await assert.rejects(
          startGatewayHarness({
            devnet,
            configure: (input) => ({ ...input, facilitator: { url: served.url, token } }),
          }),
          /refuses .*\(HTTP 401\): set facilitator\.tokenEnv/,
        );
      } finally {
        await served.close();
      }
    }
    const served = await ownFacilitator();
    try {
      const h = await startGatewayHarness({
        devnet,
        configure: (input) => ({ ...input, facilitator: { url: served.url, token: TEST_FACILITATOR_TOKEN } }),
      });
      await h.close();
    } finally {
      await served.close();
    }
  });

  test("only the seller settles: a buyer settling its own upto authorization for 1 unit without the token is refused, and the seller's settle then takes the charge", async () => {
    const buyer = devnet.accounts.buyers[2]!;
    const requirements = uptoRequirements(40_000n);
    const payload = await officialPayload(buyer.privateKey, requirements);
    const payToBefore = await devnet.usdcBalance(devnet.accounts.payTo.address);
    const buyerBefore = await devnet.usdcBalance(buyer.address);
    const body = (amount: string) =>
      JSON.stringify({
        x402Version: 2,
        paymentPayload: payload,
        paymentRequirements: { ...requirements, amount },
      });
    for (const headers of [{}, { authorization: "Bearer not-the-token" }] as Record<string, string>[]) {
      for (const path of ["/settle", "/verify", "/relay-approval"]) {
        const refused = await fetch(`${server.url}${path}`, {
          method: "POST",
          // Refused unread, such a request's socket is not one to pool for the next test's requests.
          headers: { "content-type": "application/json", connection: "close", ...headers },
          body: body("1"),
        });
        assert.equal(refused.status, 401, path);
        const answer = (await refused.json()) as { code: string; message: string };
        assert.equal(answer.code, "TOLLGATE_OPERATOR_UNAUTHORIZED");
        assert.match(answer.message, /wants Authorization: Bearer <token>.*facilitator\.tokenEnv/);
      }
    }
    const inUrl = await fetch(`${server.url}/settle?token=${TEST_FACILITATOR_TOKEN}`, {
      method: "POST",
      headers: { "content-type": "application/json", connection: "close" },
      body: body("1"),
    });
    assert.equal(inUrl.status, 401, "a token in the URL (proxies log URLs) is not taken");
    for (const token of ["", "short-token", undefined as unknown as string])
      assert.throws(
        () => createFacilitatorApp({ facilitator: {} as never, token }),
        /the facilitator's token must be at least 16 characters/,
        `token ${JSON.stringify(token)}`,
      );
    const metrics = await fetch(`${server.url}/metrics`);
    assert.equal(metrics.status, 401, "metrics are the operator's too");
    assert.equal(await devnet.usdcBalance(buyer.address), buyerBefore, "nothing moved");
    // What buyers and load balancers may read stays open.
    assert.equal((await fetch(`${server.url}/supported`)).status, 200);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);

    const settled = await client.settle(payload, { ...requirements, amount: "30000" });
    assert.equal(settled.success, true, String(settled.errorReason));
    assert.equal(await devnet.usdcBalance(devnet.accounts.payTo.address), payToBefore + 30_000n);
    assert.equal(await devnet.usdcBalance(buyer.address), buyerBefore - 30_000n);
  });

  test("a malformed body answers 400 with a reason", async () => {
    const notJson = await fetch(`${server.url}/verify`, {
      method: "POST",
      headers: facilitatorAuth,
      body: "{nope",
    });
    assert.equal(notJson.status, 400);
    assert.match((await notJson.json()).message, /JSON/);
    const wrongShape = await fetch(`${server.url}/settle`, {
      method: "POST",
      headers: { "content-type": "application/json", ...facilitatorAuth },
      body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2 }, paymentRequirements: {} }),
    });
    assert.equal(wrongShape.status, 400);
    assert.match((await wrongShape.json()).field, /^payment(Payload|Requirements)/);
    // Well-formed JSON that no scheme could settle: an amount not in digits, another network.
    const requirements = uptoRequirements(1_000n);
    const paymentPayload = await officialPayload(devnet.accounts.buyers[0]!.privateKey, requirements);
    for (const [field, odd] of [
      ["paymentRequirements.amount", { ...requirements, amount: "1e3" }],
      ["paymentRequirements.network", { ...requirements, network: "eip155:1" }],
      // A scheme it does not settle, and addresses that are none: refused in words, not a 500.
      ["paymentRequirements.scheme", { ...requirements, scheme: "stream" }],
      ["paymentRequirements.asset", { ...requirements, asset: "0xZZ" }],
      ["paymentRequirements.payTo", { ...requirements, payTo: "the seller" }],
    ] as const) {
      for (const path of ["/verify", "/settle", "/relay-approval", "/release"]) {
        const refused = await fetch(`${server.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...facilitatorAuth },
          body: JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: odd }),
        });
        assert.equal(refused.status, 400, `${path} ${field}`);
        const answer = await refused.json();
        assert.equal(answer.field, field);
        assert.match(answer.message, /^this facilitator|^an amount|^an address/, `${path} ${field}`);
      }
    }
  });

  test("POST /relay-approval answers in verify's shape, and a bodiless GET answers 405, by which a gateway finds the route", async () => {
    const requirements = uptoRequirements(1_000n);
    const paymentPayload = await officialPayload(devnet.accounts.buyers[0]!.privateKey, requirements);
    // A payment carrying no signed approve has nothing to relay: nothing stands in the way of serving it.
    const relayed = await fetch(`${server.url}/relay-approval`, {
      method: "POST",
      headers: { "content-type": "application/json", ...facilitatorAuth },
      body: JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: requirements }),
    });
    assert.equal(relayed.status, 200);
    assert.deepEqual(await relayed.json(), { isValid: true });
    const probe = await fetch(`${server.url}/relay-approval`, { headers: facilitatorAuth });
    assert.equal(probe.status, 405);
    assert.equal(probe.headers.get("allow"), "POST");
    await probe.body?.cancel();
    assert.equal(await facilitatorRelaysApprovals(server.url, TEST_FACILITATOR_TOKEN), true);
    assert.equal(await facilitatorRelaysApprovals(`${server.url}/nowhere`, TEST_FACILITATOR_TOKEN), false);
  });

  test("an unreachable chain RPC answers 503 with Retry-After", async () => {
    const dead = createFacilitator({
      rpcUrl: "http://127.0.0.1:9",
      privateKey: devnet.accounts.facilitator.privateKey,
      network: devnet.network,
      rpcTimeoutMs: 1_000,
    });
    const deadServer = await serveFacilitator({ facilitator: dead, token: TEST_FACILITATOR_TOKEN, port: 0 });
    try {
      const requirements = uptoRequirements(10_000n);
      const payload = await officialPayload(devnet.accounts.buyers[0]!.privateKey, requirements);
      const response = await fetch(`${deadServer.url}/verify`, {
        method: "POST",
        headers: { "content-type": "application/json", ...facilitatorAuth },
        body: JSON.stringify({ x402Version: 2, paymentPayload: payload, paymentRequirements: requirements }),
      });
      assert.equal(response.status, 503);
      assert.ok(response.headers.get("retry-after"));
    } finally {
      await deadServer.close();
    }
  });
});

/** A JSON-RPC proxy in front of the devnet that counts HTTP requests and the calls they carry. */
async function countingRpcProxy(target: string) {
  const counts = { requests: 0, calls: 0, largestBatch: 0 };
  const proxy = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const parsed = JSON.parse(body) as unknown;
    const calls = Array.isArray(parsed) ? parsed.length : 1;
    counts.requests++;
    counts.calls += calls;
    counts.largestBatch = Math.max(counts.largestBatch, calls);
    const upstream = await fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    response.writeHead(upstream.status, { "content-type": "application/json" });
    response.end(await upstream.text());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const { port } = proxy.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    reset() {
      Object.assign(counts, { requests: 0, calls: 0, largestBatch: 0 });
    },
    close: () => new Promise<void>((resolve) => proxy.close(() => resolve())),
  };
}

describe("facilitator JSON-RPC batching", () => {
  test("concurrent verifies share batches and keep their own outcomes; a lone verify is sent alone", async () => {
    const proxy = await countingRpcProxy(devnet.rpcUrl);
    try {
      const facilitatorFor = (rpcBatch: boolean) =>
        createFacilitator({
          rpcUrl: proxy.url,
          privateKey: devnet.accounts.facilitator.privateKey,
          network: devnet.network,
          rpcBatch,
        });
      const poor = await devnet.createBuyer(1_000n);
      const requirements = uptoRequirements(50_000n);
      const payloads = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          officialPayload(
            i === 7 ? poor.privateKey : devnet.accounts.buyers[i % 3]!.privateKey,
            requirements,
          ),
        ),
      );
      for (const rpcBatch of [true, false]) {
        const facilitator = facilitatorFor(rpcBatch);
        await facilitator.verify(payloads[0]!, requirements); // the asset's code check is cached after this
        proxy.reset();
        const lone = await facilitator.verify(payloads[1]!, requirements);
        assert.equal(lone.isValid, true);
        assert.equal(proxy.counts.largestBatch, 1, "a lone verify's calls go out one by one");
        assert.equal(proxy.counts.requests, proxy.counts.calls);

        proxy.reset();
        const results = await Promise.all(
          payloads.map((payload) => facilitator.verify(payload, requirements)),
        );
        const reasons = results.map((result) => (result.isValid ? "valid" : result.invalidReason));
        assert.deepEqual(
          reasons,
          payloads.map((_, i) => (i === 7 ? "permit2_insufficient_balance" : "valid")),
          `rpcBatch ${rpcBatch}`,
        );
        assert.ok(proxy.counts.calls >= 32, "two calls per verify at least");
        if (rpcBatch) {
          assert.ok(proxy.counts.largestBatch > 1, "concurrent calls were batched");
          assert.ok(
            proxy.counts.requests < proxy.counts.calls / 2,
            `${proxy.counts.requests} HTTP requests for ${proxy.counts.calls} calls`,
          );
        } else {
          assert.equal(proxy.counts.requests, proxy.counts.calls, "no batches when turned off");
        }
      }
    } finally {
      await proxy.close();
    }
  });
});
