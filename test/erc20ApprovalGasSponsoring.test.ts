import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import type { PaymentRequirements } from "@x402/core/types";
import { PERMIT2_ADDRESS } from "@x402/evm";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  encodeFunctionData,
  erc20Abi,
  type Hex,
  http,
  maxUint256,
  parseTransaction,
} from "viem";
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { createFacilitator } from "../src/facilitator/index.js";
import { type GatewayConfigInput, parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { createLedger, createPgliteClient } from "../src/ledger/index.js";
import {
  decodePaymentRequiredHeader,
  encodePaymentSignatureHeader,
  type PaymentPayload,
} from "../src/protocol/index.js";
import { startAnswerLosingRpc } from "./support/answerLosingRpc.js";
import {
  expectedCharge,
  type GatewayHarness,
  startGatewayHarness,
  testGatewayConfig,
} from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { finalRow, postJson } from "./support/paidRequests.js";
import { spendPermit2Nonce } from "./support/permit2Nonces.js";
import { parsePrometheusText, sumOf } from "./support/prometheusText.js";
import { recordingFetch } from "./support/recordingFetch.js";

type Approve = ReturnType<typeof parseTransaction>;

/**
 * `payload` with its signed approve (`erc20ApprovalGasSponsoring`) signed again by `account`, with the
 * fields `change` returns from the approve as signed: a buyer re-signing its approve on other terms.
 */
async function withApproveResigned(
  account: PrivateKeyAccount,
  payload: PaymentPayload,
  change: (approve: Approve) => Record<string, unknown>,
): Promise<PaymentPayload> {
  const sponsoring = payload.extensions?.erc20ApprovalGasSponsoring as { info: { signedTransaction: Hex } };
  assert.ok(sponsoring, "the payment carries a signed approve");
  const {
    r: _r,
    s: _s,
    v: _v,
    yParity: _y,
    ...approve
  } = parseTransaction(sponsoring.info.signedTransaction);
  const signedTransaction = await account.signTransaction({
    ...approve,
    ...change(approve),
  } as Parameters<typeof account.signTransaction>[0]);
  return {
    ...payload,
    extensions: {
      ...payload.extensions,
      erc20ApprovalGasSponsoring: { ...sponsoring, info: { ...sponsoring.info, signedTransaction } },
    },
  } as PaymentPayload;
}

/** The test gateway selling for the devnet's plain token (no EIP-2612), relaying approves it is sent. */
const sellingPlainToken =
  (devnet: Devnet) =>
  (input: GatewayConfigInput): GatewayConfigInput => ({
    ...input,
    asset: devnet.contracts.plainToken,
    assetDomain: { name: "Plain Test Dollar", version: "1" },
    facilitator: {
      ...(input.facilitator as object),
      gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: true },
    },
  });

/** The official x402 client paying upto from `privateKey`, with no spend controls of its own. */
const officialClient = (devnet: Devnet, privateKey: Hex) =>
  new x402Client()
    .register(devnet.network, new UptoEvmScheme(privateKeyToAccount(privateKey), { rpcUrl: devnet.rpcUrl }))
    .setSpendControls(false);

const chatBody = {
  model: mockModelId,
  messages: [{ role: "user", content: "Say something" }],
  max_tokens: 20,
};

type Completion = { usage: { prompt_tokens: number; completion_tokens: number } };

describe("gas-sponsored approval for a token without EIP-2612 (erc20ApprovalGasSponsoring)", () => {
  let devnet: Devnet;
  let h: GatewayHarness;
  let chain: ReturnType<typeof createPublicClient>;
  const sponsoredApprovals = async () =>
    sumOf(parsePrometheusText(await h.gateway.metrics.metrics()), "tollgate_sponsored_approvals_total", {
      kind: "erc20ApprovalGasSponsoring",
    });

  before(async () => {
    devnet = await startDevnet({ buyers: 1 });
    h = await startGatewayHarness({
      configure: sellingPlainToken(devnet),
      devnet,
    });
    chain = createPublicClient({ transport: http(h.devnet.rpcUrl) });
  });
  after(async () => {
    await h?.close();
    await devnet?.stop();
  });

  const allowanceOf = (owner: Address) =>
    chain.readContract({
      address: h.devnet.contracts.plainToken,
      abi: erc20Abi,
      functionName: "allowance",
      args: [owner, PERMIT2_ADDRESS],
    });

  /** A fresh wallet holding only the token, and its payment for the chat route: an upto permit and a signed approve. */
  const freshBuyerPayment = async () => {
    const buyer = await h.devnet.createFreshPlainTokenBuyer(10_000_000n);
    const unpaid = await postJson(h, "/v1/chat/completions", chatBody);
    await unpaid.text();
    const required = decodePaymentRequiredHeader(unpaid.headers.get("payment-required"));
    assert.ok(required.ok);
    const account = privateKeyToAccount(buyer.privateKey);
    const client = new x402Client()
      .register(h.devnet.network, new UptoEvmScheme(account, { rpcUrl: h.devnet.rpcUrl }))
      .setSpendControls(false);
    return { buyer, account, payload: await client.createPaymentPayload(required.paymentRequired) };
  };

  test("the facilitator lists erc20ApprovalGasSponsoring only when enabled", async () => {
    assert.deepEqual((await h.gateway.facilitator.getSupported()).extensions, [
      "eip2612GasSponsoring",
      "erc20ApprovalGasSponsoring",
    ]);
    const byDefault = createFacilitator({
      rpcUrl: h.devnet.rpcUrl,
      privateKey: h.devnet.accounts.facilitator.privateKey,
      network: h.devnet.network,
    });
    assert.deepEqual((await byDefault.getSupported()).extensions, ["eip2612GasSponsoring"]);
  });

  test("the 402 for the token declares erc20ApprovalGasSponsoring and not eip2612GasSponsoring", async () => {
    const response = await postJson(h, "/v1/chat/completions", chatBody);
    await response.text();
    const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    assert.deepEqual(Object.keys(decoded.paymentRequired.extensions ?? {}), ["erc20ApprovalGasSponsoring"]);
  });

  test("the official @x402/fetch client pays from a wallet holding only the token; the facilitator relays its approve", async () => {
    const buyer = await h.devnet.createFreshPlainTokenBuyer(10_000_000n);
    assert.equal(await allowanceOf(buyer.address), 0n);
    assert.equal(await chain.getBalance({ address: buyer.address }), 0n);
    const { fetch: recording, payloads } = recordingFetch();
    const client = officialClient(h.devnet, buyer.privateKey);
    const sponsoredBefore = await sponsoredApprovals();
    const response = await wrapFetchWithPayment(recording, client)(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chatBody),
    });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const completion = JSON.parse(text) as Completion;
    assert.ok(payloads[0]?.extensions?.erc20ApprovalGasSponsoring, "the payment carried a signed approve");
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
    assert.equal(BigInt(receipt.amount!), charge);
    assert.equal((await finalRow(h)).status, "settled");
    assert.equal(await sponsoredApprovals(), sponsoredBefore + 1, "one sponsored approval counted");
    assert.equal(await h.devnet.plainTokenBalance(buyer.address), 10_000_000n - charge);
    assert.equal(await allowanceOf(buyer.address), maxUint256, "Permit2 is now approved");
    const settle = await chain.getTransactionReceipt({ hash: receipt.transaction as Hex });
    assert.equal(settle.from.toLowerCase(), h.devnet.accounts.facilitator.address.toLowerCase());
    // The block before the settlement's holds the buyer's own approve, relayed by the facilitator.
    const block = await chain.getBlock({ blockNumber: settle.blockNumber - 1n, includeTransactions: true });
    const approve = block.transactions[0]!;
    assert.equal(approve.from.toLowerCase(), buyer.address.toLowerCase());
    assert.equal(approve.to?.toLowerCase(), h.devnet.contracts.plainToken.toLowerCase());
    const approveReceipt = await chain.getTransactionReceipt({ hash: approve.hash });
    // The facilitator sent only what the approve could burn (gas limit x max fee); the rest stays with the buyer.
    const left = await chain.getBalance({ address: buyer.address });
    assert.ok(left < approve.gas * approve.maxFeePerGas!, "the buyer kept no more than the unburnt gas");
    console.log(
      `gas: ${JSON.stringify({
        approveGas: approveReceipt.gasUsed.toString(),
        approveCostWei: (approveReceipt.gasUsed * approveReceipt.effectiveGasPrice).toString(),
        settleGas: settle.gasUsed.toString(),
        buyerNativeLeftWei: left.toString(),
      })}`,
    );
  });

  test("an approval asking for more gas or a higher fee than an approve needs gets no funding: the settle fails and the facilitator sends nothing", async () => {
    const { buyer, account, payload } = await freshBuyerPayment();
    const facilitatorAddress = h.devnet.accounts.facilitator.address;
    for (const inflated of [
      { gas: 20_000_000n },
      { maxFeePerGas: 1_000_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n },
      { chainId: 1 },
    ]) {
      const tampered = await withApproveResigned(account, payload, () => inflated);
      const facilitatorWei = await chain.getBalance({ address: facilitatorAddress });
      const facilitatorNonce = await chain.getTransactionCount({ address: facilitatorAddress });
      const requirements = { ...payload.accepted, amount: "1" };
      const verified = await h.gateway.facilitator.verify(tampered, payload.accepted);
      assert.equal(verified.isValid, false, Object.keys(inflated).join());
      assert.match(verified.invalidMessage ?? "", /the sponsored approval is refused: /);
      const settled = await h.gateway.facilitator
        .settle(tampered, requirements)
        .catch((error: unknown) => ({ success: false, errorReason: String(error) }));
      assert.equal(settled.success, false, Object.keys(inflated).join());
      assert.equal(await chain.getTransactionCount({ address: facilitatorAddress }), facilitatorNonce);
      assert.equal(await chain.getBalance({ address: facilitatorAddress }), facilitatorWei);
      assert.equal(await chain.getBalance({ address: buyer.address }), 0n, "the buyer got no gas money");
    }
  });

  test("an approval verify passed, whose nonce the payer spends before the settle, gets no funding at settle", async () => {
    const { buyer, account, payload } = await freshBuyerPayment();
    assert.ok(payload.extensions?.erc20ApprovalGasSponsoring, "the payment carries a signed approve");
    const verified = await h.gateway.facilitator.verify(payload, payload.accepted);
    assert.equal(verified.isValid, true, String(verified.invalidMessage));

    // Between verify and settle the payer spends the approve's nonce on a transaction of its own.
    const testClient = createTestClient({ mode: "anvil", transport: http(h.devnet.rpcUrl) });
    await testClient.setBalance({ address: buyer.address, value: 10n ** 18n });
    const wallet = createWalletClient({ account, chain: anvil, transport: http(h.devnet.rpcUrl) });
    const own = await wallet.sendTransaction({ to: buyer.address, value: 0n, nonce: 0 });
    assert.equal((await chain.waitForTransactionReceipt({ hash: own })).status, "success");
    await testClient.setBalance({ address: buyer.address, value: 0n });

    const facilitatorAddress = h.devnet.accounts.facilitator.address;
    const facilitatorWei = await chain.getBalance({ address: facilitatorAddress });
    const facilitatorNonce = await chain.getTransactionCount({ address: facilitatorAddress });
    const settled = await h.gateway.facilitator
      .settle(payload, { ...payload.accepted, amount: "1" })
      .catch((error: unknown) => ({ success: false, errorReason: String(error) }));
    assert.equal(settled.success, false);
    assert.equal(await chain.getTransactionCount({ address: facilitatorAddress }), facilitatorNonce);
    assert.equal(await chain.getBalance({ address: facilitatorAddress }), facilitatorWei);
    assert.equal(await chain.getBalance({ address: buyer.address }), 0n, "the buyer got no gas money");
  });

  test("a payment whose settlement would fail after its approval (the payer spent its Permit2 nonce) is refused at verify, before inference, and gets no gas at settle", async () => {
    const { buyer, account, payload } = await freshBuyerPayment();
    const sponsoring = payload.extensions?.erc20ApprovalGasSponsoring as { info: { signedTransaction: Hex } };
    assert.ok(sponsoring, "the payment carries a signed approve");
    // The payer spends the permit's nonce itself, then signs its approve again on its next account nonce.
    const testClient = createTestClient({ mode: "anvil", transport: http(h.devnet.rpcUrl) });
    await testClient.setBalance({ address: buyer.address, value: 10n ** 18n });
    const wallet = createWalletClient({ account, chain: anvil, transport: http(h.devnet.rpcUrl) });
    const permitNonce = BigInt(
      (payload.payload as { permit2Authorization: { nonce: string } }).permit2Authorization.nonce,
    );
    const burnt = await spendPermit2Nonce(wallet, permitNonce);
    assert.equal((await chain.waitForTransactionReceipt({ hash: burnt })).status, "success");
    await testClient.setBalance({ address: buyer.address, value: 0n });
    const spent = await withApproveResigned(account, payload, () => ({ nonce: 1 }));

    const verified = await h.gateway.facilitator.verify(spent, payload.accepted);
    assert.equal(verified.isValid, false, "refused before the seller serves anything");
    const facilitatorAddress = h.devnet.accounts.facilitator.address;
    const facilitatorWei = await chain.getBalance({ address: facilitatorAddress });
    const facilitatorNonce = await chain.getTransactionCount({ address: facilitatorAddress });
    const settled = await h.gateway.facilitator
      .settle(spent, { ...payload.accepted, amount: "1" })
      .catch((error: unknown) => ({ success: false, errorReason: String(error) }));
    assert.equal(settled.success, false);
    assert.equal(
      await chain.getTransactionCount({ address: facilitatorAddress }),
      facilitatorNonce,
      "nothing sent",
    );
    assert.equal(await chain.getBalance({ address: facilitatorAddress }), facilitatorWei);
    assert.equal(await chain.getBalance({ address: buyer.address }), 0n, "the buyer got no gas money");
    assert.equal(await allowanceOf(buyer.address), 0n, "its approve was not relayed");
  });

  test("a fresh wallet's requests sent at once, each carrying its one signed approve, are all served and settled: the approve is funded and relayed once", async () => {
    const buyer = await h.devnet.createFreshPlainTokenBuyer(10_000_000n);
    const client = officialClient(h.devnet, buyer.privateKey);
    const paying = wrapFetchWithPayment(fetch, client);
    const facilitatorAddress = h.devnet.accounts.facilitator.address;
    const facilitatorNonce = await chain.getTransactionCount({ address: facilitatorAddress });
    const sponsoredBefore = await sponsoredApprovals();
    const requests = 4;
    const responses = await Promise.all(
      Array.from({ length: requests }, () =>
        paying(`${h.gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(chatBody),
        }),
      ),
    );
    const charges: bigint[] = [];
    for (const response of responses) {
      const text = await response.text();
      assert.equal(response.status, 200, text);
      const completion = JSON.parse(text) as Completion;
      charges.push(expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens));
    }
    const rows = (await h.ledger.payments.recent({ limit: requests })).filter(
      (row) => row.payer.toLowerCase() === buyer.address.toLowerCase(),
    );
    assert.deepEqual(
      rows.map((row) => row.status),
      Array(requests).fill("settled"),
      "every request was settled, none left a debt",
    );
    const paid = charges.reduce((sum, charge) => sum + charge, 0n);
    assert.equal(await h.devnet.plainTokenBalance(buyer.address), 10_000_000n - paid);
    // One funding of the approve, then one settlement per request: no gas money sent again for it.
    assert.equal(
      (await chain.getTransactionCount({ address: facilitatorAddress })) - facilitatorNonce,
      1 + requests,
    );
    assert.equal(await chain.getTransactionCount({ address: buyer.address }), 1, "one approve relayed");
    assert.equal(await sponsoredApprovals(), sponsoredBefore + 1, "counted as one sponsored approval");
  });

  test("a payer whose Permit2 allowance already covers its payment gets no gas for another signed approve: it is served on the allowance that stands", async () => {
    const { buyer, account, payload } = await freshBuyerPayment();
    const first = await postJson(h, "/v1/chat/completions", chatBody, {
      "payment-signature": encodePaymentSignatureHeader(payload),
    });
    assert.equal(first.status, 200, await first.text());
    assert.equal(await allowanceOf(buyer.address), maxUint256, "its first approve was relayed");
    // Its next payment carries a fresh approve, signed on its next nonce, that it does not need.
    const unpaid = await postJson(h, "/v1/chat/completions", chatBody);
    await unpaid.text();
    const required = decodePaymentRequiredHeader(unpaid.headers.get("payment-required"));
    assert.ok(required.ok);
    const next = await officialClient(h.devnet, buyer.privateKey).createPaymentPayload(
      required.paymentRequired,
    );
    const nonce = await chain.getTransactionCount({ address: buyer.address });
    const resigned = await withApproveResigned(account, payload, () => ({ nonce }));
    const unneeded = {
      ...next,
      extensions: { ...next.extensions, ...resigned.extensions },
    } as PaymentPayload;
    const walletWei = await chain.getBalance({ address: buyer.address });
    const sponsoredBefore = await sponsoredApprovals();
    const second = await postJson(h, "/v1/chat/completions", chatBody, {
      "payment-signature": encodePaymentSignatureHeader(unneeded),
    });
    const text = await second.text();
    assert.equal(second.status, 200, text);
    const completion = JSON.parse(text) as Completion;
    const receipt = decodePaymentResponseHeader(second.headers.get("payment-response")!);
    assert.equal(
      BigInt(receipt.amount!),
      expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens),
    );
    assert.equal(await chain.getBalance({ address: buyer.address }), walletWei, "no gas money sent");
    assert.equal(await chain.getTransactionCount({ address: buyer.address }), nonce, "no approve relayed");
    assert.equal(await sponsoredApprovals(), sponsoredBefore, "no sponsored approval counted");
  });

  test("a relayed approve the node took, whose answer was lost, is served on that payment: funded once, relayed once, charged once", async () => {
    // The node takes the buyer's approve and its answer is lost (a 502): the approve landed all the same.
    const approveSelector = "0x095ea7b3";
    const relay = await startAnswerLosingRpc(h.devnet.rpcUrl, ({ method, params }) => {
      if (method !== "eth_sendRawTransaction") return false;
      const sent = parseTransaction(params[0] as Hex);
      return (
        sent.to?.toLowerCase() === h.devnet.contracts.plainToken.toLowerCase() &&
        (sent.data ?? "").startsWith(approveSelector)
      );
    });
    const lossy = await startGatewayHarness({
      configure: sellingPlainToken(h.devnet),
      devnet: h.devnet,
      rpcUrl: relay.url,
    });
    try {
      const buyer = await h.devnet.createFreshPlainTokenBuyer(10_000_000n);
      const client = officialClient(h.devnet, buyer.privateKey);
      const facilitatorAddress = h.devnet.accounts.facilitator.address;
      const facilitatorNonce = await chain.getTransactionCount({ address: facilitatorAddress });
      const response = await wrapFetchWithPayment(fetch, client)(`${lossy.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chatBody),
      });
      const text = await response.text();
      assert.equal(relay.lost(), 1, "the node's answer to the approve was lost");
      // Who pays: the buyer, its charge once; the facilitator, one funding and one settlement.
      assert.equal(response.status, 200, text);
      const completion = JSON.parse(text) as Completion;
      const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
      assert.equal((await finalRow(lossy)).status, "settled");
      assert.equal(await h.devnet.plainTokenBalance(buyer.address), 10_000_000n - charge);
      assert.equal(await chain.getTransactionCount({ address: buyer.address }), 1, "one approve");
      assert.equal((await chain.getTransactionCount({ address: facilitatorAddress })) - facilitatorNonce, 2);
    } finally {
      await lossy.close();
      await relay.close();
    }
  });

  test("two settlements of one payer whose approves are signed on the same nonce with other fees both settle: the first approve is funded and relayed, the second goes without", async () => {
    const buyer = await h.devnet.createFreshPlainTokenBuyer(10_000_000n);
    const unpaid = await postJson(h, "/v1/chat/completions", chatBody);
    await unpaid.text();
    const required = decodePaymentRequiredHeader(unpaid.headers.get("payment-required"));
    assert.ok(required.ok);
    const account = privateKeyToAccount(buyer.privateKey);
    const client = new x402Client()
      .register(h.devnet.network, new UptoEvmScheme(account, { rpcUrl: h.devnet.rpcUrl }))
      .setSpendControls(false);
    const first = await client.createPaymentPayload(required.paymentRequired);
    const second = await client.createPaymentPayload(required.paymentRequired);
    // The second's approve signed again a block later, as it were: the same nonce, a fee one wei higher.
    const refeed = await withApproveResigned(account, second, (approve) => ({
      maxFeePerGas: (approve.maxFeePerGas ?? 0n) + 1n,
    }));
    for (const payload of [first, refeed])
      assert.equal((await h.gateway.facilitator.verify(payload, payload.accepted)).isValid, true);
    const facilitatorAddress = h.devnet.accounts.facilitator.address;
    const facilitatorNonce = await chain.getTransactionCount({ address: facilitatorAddress });
    const settled = await Promise.all(
      [first, refeed].map((payload) =>
        h.gateway.facilitator
          .settle(payload, { ...payload.accepted, amount: "1" })
          .catch((error: unknown) => ({ success: false, errorReason: String(error) })),
      ),
    );
    assert.deepEqual(
      settled.map((result) => result.success),
      [true, true],
      JSON.stringify(settled.map((result) => result.errorReason)),
    );
    assert.equal(await h.devnet.plainTokenBalance(buyer.address), 10_000_000n - 2n);
    // One funding and two settlements; one approve relayed.
    assert.equal((await chain.getTransactionCount({ address: facilitatorAddress })) - facilitatorNonce, 3);
    assert.equal(await chain.getTransactionCount({ address: buyer.address }), 1);
  });

  test("a signed approve of a bounded amount is refused before inference: requests sent at once could spend it before they settle", async () => {
    const { buyer, account, payload } = await freshBuyerPayment();
    // approve(Permit2, exactly this payment's maximum): enough for one request, not for several at once.
    const bounded = await withApproveResigned(account, payload, () => ({
      data: encodeFunctionData({
        abi: erc20Abi,
        functionName: "approve",
        args: [PERMIT2_ADDRESS, BigInt(payload.accepted.amount)],
      }),
    }));
    const servedBefore = h.backend.inferenceRequests.length;
    const response = await postJson(h, "/v1/chat/completions", chatBody, {
      "payment-signature": encodePaymentSignatureHeader(bounded),
    });
    await response.text();
    assert.equal(response.status, 402);
    const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    assert.match(
      decoded.paymentRequired.error ?? "",
      /^tollgate_gas_sponsoring_refused: the sponsored approval is refused: it approves \d+, not the unlimited amount/,
    );
    assert.equal(h.backend.inferenceRequests.length, servedBefore, "no inference ran");
    assert.equal(await chain.getBalance({ address: buyer.address }), 0n, "the buyer got no gas money");
  });

  test("a signed approve its payment does not draw on gets no gas: another wallet's, another token's, another spender's, or one beside an EIP-3009 transfer", async () => {
    // An exact payment by EIP-3009 transferWithAuthorization, which draws nothing through Permit2, from a
    // wallet holding only USDC: verified and settled as any other.
    const payer = await h.devnet.createFreshBuyer(10_000_000n);
    const requirements = {
      scheme: "exact",
      network: h.devnet.network,
      asset: h.devnet.contracts.usdc,
      amount: "1000",
      payTo: h.devnet.accounts.payTo.address,
      maxTimeoutSeconds: 300,
      extra: { name: "USD Coin", version: "2" },
    } as PaymentRequirements;
    const exact = await x402Client
      .fromConfig({
        schemes: [
          { network: h.devnet.network, client: new ExactEvmScheme(privateKeyToAccount(payer.privateKey)) },
        ],
        spendControls: false,
      })
      .createPaymentPayload({
        x402Version: 2,
        resource: {
          url: `${h.gateway.url}/v1/chat/completions`,
          description: "chat",
          mimeType: "application/json",
        },
        accepts: [requirements],
      });
    assert.ok((exact.payload as { authorization?: unknown }).authorization, "an EIP-3009 payment");
    // A facilitator of USDC relaying approves, with a wallet of its own.
    const wallet = h.devnet.accounts.buyers[0]!;
    const facilitator = createFacilitator({
      rpcUrl: h.devnet.rpcUrl,
      privateKey: wallet.privateKey,
      network: h.devnet.network,
      pollingIntervalMs: 20,
      gasSponsoring: { enabled: true, erc20Approval: true },
    });
    const stranger = privateKeyToAccount(generatePrivateKey());
    const fees = await chain.estimateFeesPerGas();
    const signedApprove = (account: PrivateKeyAccount, token: Address, spender: Address) =>
      account.signTransaction({
        type: "eip1559",
        chainId: 31337,
        nonce: 0,
        to: token,
        data: encodeFunctionData({ abi: erc20Abi, functionName: "approve", args: [spender, maxUint256] }),
        gas: 120_000n,
        maxFeePerGas: fees.maxFeePerGas * 3n,
        maxPriorityFeePerGas: fees.maxFeePerGas * 2n,
      });
    const payerAccount = privateKeyToAccount(payer.privateKey);
    for (const [what, account, token, spender] of [
      [
        "another wallet's approve of another token for another spender",
        stranger,
        h.devnet.contracts.plainToken,
        stranger.address,
      ],
      [
        "the payer's own approve of Permit2 on USDC, which an EIP-3009 transfer never draws on",
        payerAccount,
        h.devnet.contracts.usdc,
        PERMIT2_ADDRESS,
      ],
    ] as const) {
      const payload = {
        ...exact,
        extensions: {
          erc20ApprovalGasSponsoring: {
            info: {
              from: account.address,
              asset: token,
              spender,
              amount: maxUint256.toString(),
              signedTransaction: await signedApprove(account, token, spender),
              version: "1",
            },
          },
        },
      } as PaymentPayload;
      const facilitatorWei = await chain.getBalance({ address: wallet.address });
      const facilitatorNonce = await chain.getTransactionCount({ address: wallet.address });
      const verified = await facilitator.verify(payload, requirements);
      assert.equal(verified.isValid, false, what);
      assert.equal(verified.invalidReason, "tollgate_gas_sponsoring_refused", what);
      assert.match(verified.invalidMessage ?? "", /^the sponsored approval is refused: /, what);
      const relayed = await facilitator.relaySponsoredApproval(payload, requirements);
      assert.match(relayed ?? "", /the sponsored approval is refused: /, what);
      assert.equal(await chain.getTransactionCount({ address: wallet.address }), facilitatorNonce, what);
      assert.equal(await chain.getBalance({ address: wallet.address }), facilitatorWei, what);
      assert.equal(
        await chain.getBalance({ address: account.address }),
        0n,
        `${what}: its signer got no gas money`,
      );
      assert.equal(
        await chain.getTransactionCount({ address: account.address }),
        0,
        `${what}: nothing relayed`,
      );
    }
  });

  test("a gateway refuses to start on a token whose decimals are not 6: its $ prices would be off by powers of ten", async () => {
    // A contract answering 18 to any call (decimals() included), at an address of the test's own.
    const asset = `0x${"18".repeat(20)}` as Address;
    await createTestClient({ mode: "anvil", transport: http(devnet.rpcUrl) }).setCode({
      address: asset,
      bytecode: "0x601260005260206000f3",
    });
    const ledger = await createLedger(await createPgliteClient());
    try {
      await assert.rejects(
        startGateway({
          config: parseGatewayConfig({
            ...testGatewayConfig({ devnet, backendUrl: "http://127.0.0.1:9/v1" }),
            asset,
          }),
          ledger,
          pollingIntervalMs: 20,
        }),
        (error: unknown) =>
          isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
          /has 18 decimals; .* off by 10\^12: use a 6-decimal token/.test(error.shortMessage),
      );
    } finally {
      await ledger.close();
    }
  });
});
