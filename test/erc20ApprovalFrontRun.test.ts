// A fresh wallet (a token without EIP-2612, no gas) pays with a signed `approve` the seller's facilitator
// relays, funding its gas. A hostile payer spends that gas on the approve's nonce first (it sees the
// funding land). The approve is relayed before the request is served, by the gateway's own facilitator
// or by a remote `tollgate facilitator`, so the payer is refused: it keeps at most the gas, never the
// inference, and the seller is owed nothing it cannot collect. A remote facilitator that relays only at
// settle, after serving, is not offered the approve at all.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import { PERMIT2_ADDRESS } from "@x402/evm";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, erc20Abi, type Hex, http, maxUint256 } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { TollgateError } from "../src/errors/index.js";
import { createFacilitator, serveFacilitator } from "../src/facilitator/index.js";
import type { GatewayConfigInput } from "../src/gateway/index.js";
import { createMemoryPayerQuotas } from "../src/ledger/index.js";
import { captureLogger } from "../src/ledger/testkit/captureLogger.js";
import { type ApproveFrontRunner, startApproveFrontRunner } from "./support/approveFrontRunner.js";
import { TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { startSwitchableRpc } from "./support/switchableRpc.js";

let devnet: Devnet;
let h: GatewayHarness;
let frontRunner: ApproveFrontRunner;

before(async () => {
  devnet = await startDevnet({ buyers: 2 });
  frontRunner = await startApproveFrontRunner(devnet.rpcUrl);
  h = await startGatewayHarness({
    devnet,
    rpcUrl: frontRunner.url,
    configure: sellingPlainToken,
  });
});

/** The gateway's config selling the token without EIP-2612, its facilitator relaying signed approves. */
function sellingPlainToken(input: GatewayConfigInput): GatewayConfigInput {
  return {
    ...input,
    asset: devnet.contracts.plainToken,
    assetDomain: { name: "Plain Test Dollar", version: "1" },
    facilitator: {
      ...(input.facilitator as object),
      gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: true },
    },
  } as GatewayConfigInput;
}
after(async () => {
  await h?.close();
  await frontRunner?.close();
  await devnet?.stop();
});

/** A fresh wallet holding only the plain token (no EIP-2612, no gas), paying with the official client. */
async function freshPlainTokenPayer() {
  const buyer = await devnet.createFreshPlainTokenBuyer(10_000_000n);
  const client = new x402Client()
    .register(
      devnet.network,
      new UptoEvmScheme(privateKeyToAccount(buyer.privateKey), { rpcUrl: devnet.rpcUrl }),
    )
    .setSpendControls(false);
  return { buyer, client, pay: wrapFetchWithPayment(fetch, client) };
}

const chatBody = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "Say something" }],
  max_tokens: 20,
});
const post = { method: "POST", headers: { "content-type": "application/json" }, body: chatBody };

/** A fresh plain-token wallet's payment, signed on `gateway`'s offer, carrying its signed approve. */
async function signedSponsoredPayment(gateway: GatewayHarness) {
  const { buyer, client } = await freshPlainTokenPayer();
  const offered = await fetch(`${gateway.gateway.url}/v1/chat/completions`, post);
  await offered.text();
  const payload = await client.createPaymentPayload(
    decodePaymentRequiredHeader(offered.headers.get("payment-required") ?? ""),
  );
  assert.ok(payload.extensions?.erc20ApprovalGasSponsoring, "the payment carries the signed approve");
  return { buyer, payload };
}

/** Waits until the payer's relayed approve of Permit2 is on the chain (a relay the gateway gave up on). */
async function approveLanded(payer: Hex): Promise<void> {
  const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
  for (let attempt = 0; attempt < 200; attempt++) {
    const allowance = await chain.readContract({
      address: devnet.contracts.plainToken,
      abi: erc20Abi,
      functionName: "allowance",
      args: [payer, PERMIT2_ADDRESS],
    });
    if (allowance === maxUint256) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail("the relayed approve never landed");
}

/**
 * A payer whose first payment's relay outlived the gateway's bound (`gateway` answered it 503) pays
 * again once the approve landed: served once and charged once, the first payment failed and never charged.
 */
async function servedOnceAfterLateApprove(
  gateway: GatewayHarness,
  payer: Awaited<ReturnType<typeof freshPlainTokenPayer>>,
) {
  await approveLanded(payer.buyer.address);
  const again = await payer.pay(`${gateway.gateway.url}/v1/chat/completions`, post);
  const text = await again.text();
  assert.equal(again.status, 200, text);
  const [second, first] = await gateway.ledger.payments.recent();
  assert.equal(second?.status, "settled");
  assert.deepEqual([first?.status, first?.chargeAtomic ?? 0n], ["failed", 0n], "the first is never charged");
  assert.equal(
    await devnet.plainTokenBalance(payer.buyer.address),
    10_000_000n - (second?.chargeAtomic ?? 0n),
    "the payer paid the one request it was served, once",
  );
}

/**
 * The attack through `gateway`, whose facilitator's key is `facilitator`: the payer front-runs its
 * approve. Checks it was refused before inference, owes nothing and paid nothing, and the facilitator
 * sent the gas funding alone.
 */
async function frontRunIsRefused(gateway: GatewayHarness, facilitator: Hex) {
  const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
  const { buyer, pay } = await freshPlainTokenPayer();
  const frontRan = frontRunner.arm(buyer, devnet.contracts.plainToken, devnet.accounts.payTo.address);
  const facilitatorNonce = await chain.getTransactionCount({ address: facilitator });
  const servedBefore = gateway.backend.inferenceRequests.length;
  const rowsBefore = (await gateway.ledger.payments.recent()).length;
  const response = await pay(`${gateway.gateway.url}/v1/chat/completions`, post);
  const text = await response.text();
  assert.ok(frontRan(), "the payer front-ran its approve");
  assert.equal(response.status, 402, text);
  const refusal = decodePaymentRequiredHeader(response.headers.get("payment-required") ?? "");
  // In Tollgate's words, what happened and what to do; not the chain node's ("Transaction creation failed.").
  assert.match(
    refusal.error ?? "",
    /^tollgate_gas_sponsoring_refused: the sponsored approval is refused: its gas was sent, and another transaction of the payer on the approve's nonce went first, so the approve did not land; approve Permit2 from the wallet itself$/,
  );
  assert.equal(gateway.backend.inferenceRequests.length, servedBefore, "no inference ran");
  const rows = await gateway.ledger.payments.recent();
  assert.equal(rows.length, rowsBefore + 1);
  assert.deepEqual(
    [rows[0]!.status, rows[0]!.chargeAtomic ?? 0n],
    ["failed", 0n],
    "the payment's row failed, nothing charged and no debt",
  );
  assert.equal(await devnet.plainTokenBalance(buyer.address), 10_000_000n, "the payer paid nothing");
  assert.equal(
    (await chain.getTransactionCount({ address: facilitator })) - facilitatorNonce,
    1,
    "the facilitator sent the gas funding alone: no settlement",
  );
}

test("a payer that spends the gas funded for its approve on the approve's nonce is refused before inference: it is not served, and nothing is owed", async () => {
  await frontRunIsRefused(h, devnet.accounts.facilitator.address);
});

test("a facilitator that cannot send an approve's gas funding (its wallet is empty) leaves the payer's sponsorship uncounted: nothing was sent", async () => {
  const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
  const quotas = createMemoryPayerQuotas();
  const log = captureLogger();
  const broke = createFacilitator({
    logger: log.logger,
    rpcUrl: devnet.rpcUrl,
    privateKey: generatePrivateKey(),
    network: devnet.network,
    pollingIntervalMs: 20,
    gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: true },
    payerQuotas: quotas,
  });
  assert.equal(await chain.getBalance({ address: broke.address }), 0n, "the facilitator holds no gas");
  const { buyer, payload } = await signedSponsoredPayment(h);
  // Asked four times, past the limit of 3: a try that sent nothing never counts.
  for (let attempt = 0; attempt < 4; attempt++) {
    const refused = await broke.relaySponsoredApproval(payload, payload.accepted);
    assert.equal(
      refused,
      "the sponsored approval is not relayed: this facilitator could not send the gas for it, so nothing was sent and nothing counts against the payer's sponsored approvals; pay again later, or approve Permit2 from the wallet itself",
    );
  }
  assert.equal(
    await chain.getTransactionCount({ address: broke.address }),
    0,
    "the facilitator sent nothing",
  );
  assert.ok(
    log.records.some((record) => /Transaction creation failed/.test(String(record.error))),
    "the chain node's answer is in the log",
  );
  assert.equal(await chain.getBalance({ address: buyer.address }), 0n, "the payer got no gas");
  assert.deepEqual(
    await quotas.uses({ kind: "sponsored_approval", network: devnet.network, payer: buyer.address }),
    [],
    "no sponsorship counted against the payer",
  );
});

test("a facilitator whose chain node took the approve's gas funding but answered an error reads the funding from the chain: the approve is relayed, the funding sent once and counted once", async () => {
  const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
  const quotas = createMemoryPayerQuotas();
  const sender = devnet.accounts.buyers[1]!;
  const facilitator = createFacilitator({
    rpcUrl: frontRunner.url,
    privateKey: sender.privateKey,
    network: devnet.network,
    pollingIntervalMs: 20,
    gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: true },
    payerQuotas: quotas,
  });
  const { buyer, payload } = await signedSponsoredPayment(h);
  const sentBefore = await chain.getTransactionCount({ address: sender.address });
  const answerAgain = frontRunner.failFundingAnswers(buyer.address);
  let refused: string | undefined;
  try {
    refused = await facilitator.relaySponsoredApproval(payload, payload.accepted);
  } finally {
    answerAgain();
  }
  // Who pays: the facilitator, one funding; the payer's sponsorship, one use; the approve it bought lands.
  assert.equal(refused, undefined, "relayed");
  await approveLanded(buyer.address);
  assert.equal(
    (await chain.getTransactionCount({ address: sender.address })) - sentBefore,
    1,
    "one funding sent, not a second one",
  );
  assert.equal(
    (await quotas.uses({ kind: "sponsored_approval", network: devnet.network, payer: buyer.address })).length,
    1,
    "the funding counts against the payer's sponsored approvals",
  );
});

test("a facilitator whose chain RPC is unreachable while it relays an approve says the chain is unavailable (a 503 to the buyer), not that the sponsorship is refused", async () => {
  const rpc = await startSwitchableRpc(devnet.rpcUrl);
  try {
    const facilitator = createFacilitator({
      rpcUrl: rpc.url,
      privateKey: devnet.accounts.facilitator.privateKey,
      network: devnet.network,
      pollingIntervalMs: 20,
      gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: true },
    });
    const { payload } = await signedSponsoredPayment(h);
    await rpc.cut("refused");
    await assert.rejects(
      facilitator.relaySponsoredApproval(payload, payload.accepted),
      (error: unknown) => error instanceof TollgateError && error.code === "TOLLGATE_CHAIN_UNAVAILABLE",
    );
  } finally {
    await rpc.close();
  }
});

test("a payment whose authorization no longer outlives the request once its approve is relayed (a slow chain) is refused before inference", async () => {
  // The least validity the config allows plus 4 s; the approve takes 6 s to reach the chain.
  const slow = await startGatewayHarness({
    devnet,
    rpcUrl: frontRunner.url,
    configure: (input) => ({
      ...sellingPlainToken(input),
      maxTimeoutSeconds: 14,
      settlementMarginSeconds: 5,
      models: input.models.map((model) => ({
        ...model,
        backend: { ...(model.backend as object), maxDurationSeconds: 5 },
      })) as typeof input.models,
    }),
  });
  try {
    const { buyer, pay } = await freshPlainTokenPayer();
    frontRunner.delayNextApprove(devnet.contracts.plainToken, 6_000);
    const response = await pay(`${slow.gateway.url}/v1/chat/completions`, post);
    const text = await response.text();
    assert.equal(response.status, 402, text);
    assert.match(
      decodePaymentRequiredHeader(response.headers.get("payment-required") ?? "").error ?? "",
      /^tollgate_authorization_expires_too_soon: the authorization must stay valid at least 10 s from now/,
    );
    assert.equal(slow.backend.inferenceRequests.length, 0, "no inference ran");
    assert.equal(await devnet.plainTokenBalance(buyer.address), 10_000_000n, "the payer paid nothing");
  } finally {
    await slow.close();
  }
});

test("a relay that outlives timeouts.verifySeconds (a chain that does not answer) answers 503 with Retry-After before anything is served; the approve landing later serves the payer's next payment once, charged once", async () => {
  const bounded = await startGatewayHarness({
    devnet,
    rpcUrl: frontRunner.url,
    configure: (input) => ({ ...sellingPlainToken(input), timeouts: { verifySeconds: 2 } }),
  });
  try {
    const payer = await freshPlainTokenPayer();
    frontRunner.delayNextApprove(devnet.contracts.plainToken, 6_000);
    const response = await payer.pay(`${bounded.gateway.url}/v1/chat/completions`, post);
    const text = await response.text();
    assert.equal(response.status, 503, text);
    assert.ok(response.headers.get("retry-after"), "it says when to try again");
    assert.equal(bounded.backend.inferenceRequests.length, 0, "no inference ran");
    assert.equal(await devnet.plainTokenBalance(payer.buyer.address), 10_000_000n, "the payer paid nothing");
    await servedOnceAfterLateApprove(bounded, payer);
    assert.equal(
      (
        await bounded.ledger.quotas.uses({
          kind: "sponsored_approval",
          network: devnet.network,
          payer: payer.buyer.address,
        })
      ).length,
      1,
      "one sponsored approval counted: the one whose gas was sent",
    );
  } finally {
    await bounded.close();
  }
});

describe("a gateway on a remote facilitator", () => {
  // A `tollgate facilitator` of its own key (the devnet's first buyer account holds gas), on the relay.
  let remote: Awaited<ReturnType<typeof serveFacilitator>>;
  // A facilitator that relays approves only at settle, as others do: the same one, without Tollgate's route.
  let settleOnly: Server;
  let onTollgate: GatewayHarness;
  let onSettleOnly: GatewayHarness;
  // The same tollgate facilitator whose POST /relay-approval is down (its chain RPC unreachable: 503).
  let relayDown: Server;
  let onRelayDown: GatewayHarness;
  // The same, whose POST /relay-approval is gone (another facilitator put in its place since the gateway started).
  let relayGone: Server;
  let onRelayGone: GatewayHarness;
  const remoteKey = () => devnet.accounts.buyers[0]!;
  const onRemote = (url: string) => (input: GatewayConfigInput) => ({
    ...input,
    asset: devnet.contracts.plainToken,
    assetDomain: { name: "Plain Test Dollar", version: "1" },
    facilitator: { url, token: TEST_FACILITATOR_TOKEN },
  });
  before(async () => {
    const facilitator = createFacilitator({
      rpcUrl: frontRunner.url,
      privateKey: remoteKey().privateKey,
      network: devnet.network,
      pollingIntervalMs: 20,
      gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: true },
    });
    remote = await serveFacilitator({ facilitator, token: TEST_FACILITATOR_TOKEN, port: 0 });
    // The remote facilitator behind a proxy that answers POST /relay-approval itself (`status`, `body`).
    const proxyAnsweringRelay = async (answer: { methods: string[]; status: number; body: string }) => {
      const proxy = createServer(async (request, response) => {
        const chunks: Buffer[] = [];
        for await (const chunk of request) chunks.push(chunk as Buffer);
        if (request.url?.startsWith("/relay-approval") && answer.methods.includes(request.method ?? "")) {
          response
            .writeHead(answer.status, { "content-type": "application/json", "retry-after": "5" })
            .end(answer.body);
          return;
        }
        const upstream = await fetch(`${remote.url}${request.url}`, {
          method: request.method,
          headers: request.headers as Record<string, string>,
          ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
        });
        response.writeHead(upstream.status, { "content-type": "application/json" });
        response.end(await upstream.text());
      });
      await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
      return proxy;
    };
    settleOnly = await proxyAnsweringRelay({
      methods: ["GET", "POST"],
      status: 404,
      body: '{"error":"not_found"}',
    });
    relayDown = await proxyAnsweringRelay({
      methods: ["POST"],
      status: 503,
      body: '{"error":"chain_unavailable","message":"the chain RPC is unreachable"}',
    });
    relayGone = await proxyAnsweringRelay({ methods: ["POST"], status: 404, body: '{"error":"not_found"}' });
    onRelayGone = await startGatewayHarness({
      devnet,
      configure: onRemote(`http://127.0.0.1:${(relayGone.address() as AddressInfo).port}`),
    });
    onRelayDown = await startGatewayHarness({
      devnet,
      configure: onRemote(`http://127.0.0.1:${(relayDown.address() as AddressInfo).port}`),
    });
    onTollgate = await startGatewayHarness({ devnet, configure: onRemote(remote.url) });
    onSettleOnly = await startGatewayHarness({
      devnet,
      configure: onRemote(`http://127.0.0.1:${(settleOnly.address() as AddressInfo).port}`),
    });
  });
  after(async () => {
    await onTollgate?.close();
    await onSettleOnly?.close();
    await onRelayDown?.close();
    await onRelayGone?.close();
    relayGone?.close();
    settleOnly?.close();
    relayDown?.close();
    await remote?.close();
  });

  test("a tollgate facilitator relays the approve before serving: the payer that spends its funded gas is refused before inference", async () => {
    await frontRunIsRefused(onTollgate, remoteKey().address);
  });

  test("a tollgate facilitator relays an honest fresh wallet's approve before serving: served, and settled for its charge", async () => {
    const { buyer, pay } = await freshPlainTokenPayer();
    const response = await pay(`${onTollgate.gateway.url}/v1/chat/completions`, post);
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response") ?? "");
    assert.ok(receipt.success);
    const [row] = await onTollgate.ledger.payments.recent();
    assert.equal(row?.status, "settled");
    assert.equal(BigInt(receipt.amount ?? "-1"), row?.chargeAtomic);
    assert.equal(
      await devnet.plainTokenBalance(buyer.address),
      10_000_000n - (row?.chargeAtomic ?? 0n),
      "the payer paid its charge",
    );
  });

  test("POST /relay-approval funds and relays nothing for a payment that does not verify: a bad signature gets a refusal, and the facilitator sends no gas", async () => {
    const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
    const { buyer, payload: signed } = await signedSponsoredPayment(onTollgate);
    // The Permit2 authorization's signature is another's: no payment, only a signed approve to fund.
    const inner = signed.payload as { signature: Hex };
    const forged = {
      ...signed,
      payload: { ...signed.payload, signature: `${inner.signature.slice(0, -4)}0000` },
    };
    const facilitatorNonce = await chain.getTransactionCount({ address: remoteKey().address });
    const relayed = await fetch(`${remote.url}/relay-approval`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TEST_FACILITATOR_TOKEN}` },
      body: JSON.stringify({ x402Version: 2, paymentPayload: forged, paymentRequirements: signed.accepted }),
    });
    const answer = (await relayed.json()) as {
      isValid: boolean;
      invalidReason?: string;
      invalidMessage?: string;
    };
    assert.equal(relayed.status, 200, JSON.stringify(answer));
    assert.equal(answer.isValid, false, JSON.stringify(answer));
    assert.match(answer.invalidMessage ?? "", /not verified/);
    assert.equal(
      (await chain.getTransactionCount({ address: remoteKey().address })) - facilitatorNonce,
      0,
      "the facilitator sent nothing: no gas funding",
    );
    assert.equal(await chain.getBalance({ address: buyer.address }), 0n, "the payer got no gas");
    assert.equal(
      await chain.getTransactionCount({ address: buyer.address }),
      0,
      "its approve was not relayed",
    );
  });

  test("a facilitator that cannot relay the approve for now answers 503 with Retry-After: no inference, nothing paid, not a refusal of the sponsorship", async () => {
    const { buyer, pay } = await freshPlainTokenPayer();
    const servedBefore = onRelayDown.backend.inferenceRequests.length;
    const response = await pay(`${onRelayDown.gateway.url}/v1/chat/completions`, post);
    const text = await response.text();
    assert.equal(response.status, 503, text);
    assert.ok(response.headers.get("retry-after"), "it says when to try again");
    assert.match(text, /relay/);
    assert.equal(onRelayDown.backend.inferenceRequests.length, servedBefore, "no inference ran");
    assert.equal(await devnet.plainTokenBalance(buyer.address), 10_000_000n, "the payer paid nothing");
  });

  test("a facilitator that no longer has POST /relay-approval refuses the sponsorship in words (approve Permit2 first), with no inference", async () => {
    const { buyer, pay } = await freshPlainTokenPayer();
    const servedBefore = onRelayGone.backend.inferenceRequests.length;
    const response = await pay(`${onRelayGone.gateway.url}/v1/chat/completions`, post);
    const text = await response.text();
    assert.equal(response.status, 402, text);
    assert.match(
      decodePaymentRequiredHeader(response.headers.get("payment-required") ?? "").error ?? "",
      /^tollgate_gas_sponsoring_refused: this gateway's facilitator does not relay a signed approve before serving \(HTTP 404 to POST \/relay-approval\); approve Permit2 first/,
    );
    assert.equal(onRelayGone.backend.inferenceRequests.length, servedBefore, "no inference ran");
    assert.equal(await devnet.plainTokenBalance(buyer.address), 10_000_000n, "the payer paid nothing");
  });

  test("a facilitator that relays approves only at settle is not offered them: the 402 declares no erc20ApprovalGasSponsoring, and a payment carrying one is refused before inference", async () => {
    const unpaid = await fetch(`${onSettleOnly.gateway.url}/v1/chat/completions`, post);
    await unpaid.text();
    assert.equal(unpaid.status, 402);
    const offered = decodePaymentRequiredHeader(unpaid.headers.get("payment-required") ?? "");
    assert.ok(offered.accepts.length > 0);
    assert.equal(
      offered.extensions?.erc20ApprovalGasSponsoring,
      undefined,
      JSON.stringify(offered.extensions),
    );
    // A payment signed on the same offer from a gateway that declares it, carrying the signed approve.
    const { buyer, payload } = await signedSponsoredPayment(onTollgate);
    const servedBefore = onSettleOnly.backend.inferenceRequests.length;
    const refused = await fetch(`${onSettleOnly.gateway.url}/v1/chat/completions`, {
      ...post,
      headers: { ...post.headers, "payment-signature": encodePaymentSignatureHeader(payload) },
    });
    const text = await refused.text();
    assert.equal(refused.status, 402, text);
    assert.match(
      decodePaymentRequiredHeader(refused.headers.get("payment-required") ?? "").error ?? "",
      /^tollgate_gas_sponsoring_refused: this gateway's facilitator does not sponsor erc20ApprovalGasSponsoring; approve Permit2/,
    );
    assert.equal(onSettleOnly.backend.inferenceRequests.length, servedBefore, "no inference ran");
    assert.equal(await devnet.plainTokenBalance(buyer.address), 10_000_000n, "the payer paid nothing");
  });
  test("a remote relay that outlives facilitator.timeoutMs answers 503 with Retry-After before anything is served; the facilitator that funded the approve keeps the payer's sponsorship counted", async () => {
    const quotas = createMemoryPayerQuotas();
    const slowRemote = await serveFacilitator({
      facilitator: createFacilitator({
        rpcUrl: frontRunner.url,
        privateKey: devnet.accounts.buyers[1]!.privateKey,
        network: devnet.network,
        pollingIntervalMs: 20,
        gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: true },
        payerQuotas: quotas,
      }),
      token: TEST_FACILITATOR_TOKEN,
      port: 0,
    });
    const gateway = await startGatewayHarness({
      devnet,
      configure: (input) => ({
        ...onRemote(slowRemote.url)(input),
        facilitator: { url: slowRemote.url, token: TEST_FACILITATOR_TOKEN, timeoutMs: 2_000 },
      }),
    });
    try {
      const payer = await freshPlainTokenPayer();
      frontRunner.delayNextApprove(devnet.contracts.plainToken, 6_000);
      const response = await payer.pay(`${gateway.gateway.url}/v1/chat/completions`, post);
      const text = await response.text();
      assert.equal(response.status, 503, text);
      assert.ok(response.headers.get("retry-after"), "it says when to try again");
      assert.equal(gateway.backend.inferenceRequests.length, 0, "no inference ran");
      await servedOnceAfterLateApprove(gateway, payer);
      assert.equal(
        (
          await quotas.uses({
            kind: "sponsored_approval",
            network: devnet.network,
            payer: payer.buyer.address,
          })
        ).length,
        1,
        "the funded approve counts against the payer's limit",
      );
    } finally {
      await gateway.close();
      await slowRemote.close();
    }
  });
});
