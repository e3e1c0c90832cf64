// The chain misbehaves under the money: a block taken back after its receipt was seen, a facilitator
// wallet without gas. Nothing is served for free by accident, and what the chain took back is reported.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { PERMIT2_ADDRESS } from "@x402/evm";
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  encodeFunctionData,
  getAddress,
  http,
  keccak256,
  parseAbi,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { isTollgateError } from "../src/errors/index.js";
import { serveFacilitator, type TollgateFacilitator } from "../src/facilitator/index.js";
import { createPaymentRecovery, reconcileLedger } from "../src/gateway/index.js";
import type { PaymentRecord } from "../src/ledger/index.js";
import { decodePaymentRequiredHeader } from "../src/protocol/index.js";
import { TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";
import { type GatewayHarness, startGatewayHarness, startGatewayOnLedger } from "./support/gatewayHarness.js";
import { signHostilePayment } from "./support/hostileBuyer.js";
import { holdStreams, mockModelId } from "./support/mockBackend.js";
import { finalRow, postJson, quoteOf } from "./support/paidRequests.js";

let h: GatewayHarness;

before(async () => {
  h = await startGatewayHarness();
});

after(async () => {
  await h?.close();
});

const chat = { model: mockModelId, messages: [{ role: "user", content: "hello" }], max_tokens: 16 };
const chain = () => createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
const testClient = () => createTestClient({ chain: anvil, mode: "anvil", transport: http(h.devnet.rpcUrl) });

/** Signs the 402 of a chat request for real and sends the paid request. */
async function paidChat(privateKey: `0x${string}`): Promise<{ response: Response; signature: string }> {
  const quote = await quoteOf(h, "/v1/chat/completions", chat);
  const signature = await signHostilePayment({ paymentRequired: quote.header, privateKey });
  const response = await postJson(h, "/v1/chat/completions", chat, { "payment-signature": signature });
  return { response, signature };
}

describe("an RPC of another chain than the network", () => {
  test("stops the gateway at start, naming rpcUrl and both chains, rather than refuse every payment", async () => {
    // Base Sepolia's payments, signed for chain 84532, failed verify on the devnet: permit2_simulation_failed.
    const refusal = await startGatewayOnLedger(h, (input) => ({ ...input, network: "eip155:84532" })).then(
      async (gateway) => {
        await gateway.close();
        return undefined;
      },
      (error: unknown) => error,
    );
    assert.ok(
      isTollgateError(refusal, "TOLLGATE_CONFIG_INVALID"),
      `started, or failed otherwise: ${String(refusal)}`,
    );
    assert.equal(
      refusal.shortMessage,
      `config key rpcUrl: ${h.devnet.rpcUrl} is chain 31337, not eip155:84532: every payment, signed for eip155:84532, would be refused; set rpcUrl to an RPC of eip155:84532, or network to eip155:31337`,
    );
  });
});

describe("an assetDomain other than the token's", () => {
  test("stops the gateway at start, naming the token's own name and version", async () => {
    // Before, it started, and every exact payment was refused 402 invalid_exact_evm_token_name_mismatch.
    const refusal = await startGatewayOnLedger(h, (input) => ({
      ...input,
      assetDomain: { name: "USDC", version: "1" },
    })).then(
      async (gateway) => {
        await gateway.close();
        return undefined;
      },
      (error: unknown) => error,
    );
    assert.ok(
      isTollgateError(refusal, "TOLLGATE_CONFIG_INVALID"),
      `started, or failed otherwise: ${String(refusal)}`,
    );
    assert.equal(
      refusal.shortMessage,
      `config key assetDomain: the token ${getAddress(h.devnet.contracts.usdc)} is named "USD Coin", not "USDC" and at version "2", not "1", so every exact payment and EIP-2612 permit signed on the announced domain would be refused: set assetDomain to { name: "USD Coin", version: "2" }`,
    );
  });
});

describe("a remote facilitator of another network", () => {
  test("stops the gateway at start, naming the facilitator, the networks it settles and the models no one could pay", async () => {
    const remote = await serveFacilitator({
      facilitator: h.gateway.facilitator as TollgateFacilitator,
      token: TEST_FACILITATOR_TOKEN,
      port: 0,
    });
    try {
      // Before, it started with a warning and answered every request 503 no payment scheme is available right now.
      const refusal = await startGatewayOnLedger(h, (input) => ({
        ...input,
        network: "eip155:137",
        rpcUrl: "http://127.0.0.1:9",
        asset: undefined,
        assetDomain: undefined,
        facilitator: { url: remote.url, token: TEST_FACILITATOR_TOKEN },
      })).then(
        async (gateway) => {
          await gateway.close();
          return undefined;
        },
        (error: unknown) => error,
      );
      assert.ok(
        isTollgateError(refusal, "TOLLGATE_CONFIG_INVALID"),
        `started, or failed otherwise: ${String(refusal)}`,
      );
      assert.equal(
        refusal.shortMessage,
        `config key facilitator: the facilitator at ${remote.url} settles no upto on eip155:137 (upto on: ${h.devnet.network}), and upto is the only way to pay model ${mockModelId}: every request would be refused; use a facilitator of eip155:137 (e.g. https://x402.polygon.technology), or check network`,
      );
    } finally {
      await remote.close();
    }
  });
});

describe("a facilitator wallet without gas", () => {
  test("serves nothing: 503 with Retry-After, no inference, no debt for the payer; funded again, the payer is served and charged", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const facilitator = h.devnet.accounts.facilitator.address;
    const funded = await chain().getBalance({ address: facilitator });
    const inferencesBefore = h.backend.requests.length;
    const rowsBefore = (await h.ledger.payments.recent({ limit: 1000 })).length;
    await testClient().setBalance({ address: facilitator, value: 0n });
    let refused: Response;
    try {
      ({ response: refused } = await paidChat(buyer.privateKey));
    } finally {
      await testClient().setBalance({ address: facilitator, value: funded });
    }
    const text = await refused.text();
    assert.equal(refused.status, 503, text);
    assert.ok(refused.headers.get("retry-after"), "told when to come back");
    assert.match(text, /TOLLGATE_FACILITATOR_UNAVAILABLE/);
    assert.equal(h.backend.requests.length, inferencesBefore, "no inference ran");
    const rows = await h.ledger.payments.recent({ limit: 1000 });
    assert.equal(
      rows.filter((row) => row.status === "debt").length,
      0,
      "the payer owes nothing for the facilitator's empty wallet",
    );
    assert.ok(rows.length - rowsBefore <= 1);

    // Funded again (a second later, past the cached balance): the same payer is served and charged.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const { response } = await paidChat(buyer.privateKey);
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
  });
});

describe("a facilitator wallet with gas for one settlement", () => {
  test("requests it admitted together whose settlements its wallet could not pay refuse none of their payers", async () => {
    const signer = (h.gateway.facilitator as TollgateFacilitator).signer;
    const facilitator = h.devnet.accounts.facilitator.address;
    const funded = await chain().getBalance({ address: facilitator });
    const buyers = [];
    for (let i = 0; i < 4; i++) buyers.push(await h.devnet.createBuyer(10_000_000n));
    const { neededWei } = await signer.gasFunds(150_000n);
    const streamed = { ...chat, stream: true };
    await testClient().setBalance({ address: facilitator, value: neededWei });
    let rows: PaymentRecord[];
    try {
      // Admitted together: each verify sees the gas of one settlement, and each is served.
      h.backend.clearRequests();
      const release = holdStreams(h.backend, 1);
      const responses = buyers.map(async (buyer) => {
        const quote = await quoteOf(h, "/v1/chat/completions", streamed);
        const signature = await signHostilePayment({
          paymentRequired: quote.header,
          privateKey: buyer.privateKey,
        });
        return postJson(h, "/v1/chat/completions", streamed, { "payment-signature": signature });
      });
      while (h.backend.inferenceRequests.length < buyers.length) await new Promise((r) => setTimeout(r, 50));
      release();
      for (const response of await Promise.all(responses)) await response.text();
      const payers = new Set(buyers.map((buyer) => buyer.address.toLowerCase()));
      rows = (await h.ledger.payments.recent({ limit: 50 })).filter((row) =>
        payers.has(row.payer.toLowerCase()),
      );
    } finally {
      await testClient().setBalance({ address: facilitator, value: funded });
      // The balance the facilitator last read is the empty wallet's: read again, for the tests after.
      await signer.gasFunds(150_000n, { fresh: true });
    }
    const debts = rows.filter((row) => row.status === "debt");
    assert.ok(debts.length > 0, `the wallet paid every settlement: ${rows.map((row) => row.status)}`);
    for (const debt of debts)
      assert.equal(
        await h.ledger.payments.hasOpenDebt(debt.network, debt.payer),
        false,
        `a payer is refused for the facilitator's empty wallet (${debt.error}; ${debts.length} of ${rows.length} debts)`,
      );
  });
});

describe("a charge its facilitator's empty wallet left unpaid", () => {
  test("stays reserved on its payer's funds while it can be settled: the payer's next payment is not admitted on what that charge needs, and recovery collects it", async () => {
    const signer = (h.gateway.facilitator as TollgateFacilitator).signer;
    const facilitator = h.devnet.accounts.facilitator.address;
    const funded = await chain().getBalance({ address: facilitator });
    // Answers that fill their output limit: a charge near the maximum.
    const streamed = { ...chat, stream: true, max_tokens: 400 };
    h.backend.set({ responseTokens: 400 });
    const { amount: maxAtomic } = await quoteOf(h, "/v1/chat/completions", streamed);
    // Enough for one request's maximum, not for two requests' charges.
    const buyer = await h.devnet.createBuyer(maxAtomic);
    const pay = async () => {
      const quote = await quoteOf(h, "/v1/chat/completions", streamed);
      const signature = await signHostilePayment({
        paymentRequired: quote.header,
        privateKey: buyer.privateKey,
      });
      return postJson(h, "/v1/chat/completions", streamed, { "payment-signature": signature });
    };
    let owed: PaymentRecord | undefined;
    try {
      // Admitted and served; the facilitator's wallet is emptied before its settlement.
      h.backend.clearRequests();
      const release = holdStreams(h.backend, 1);
      const answer = pay();
      while (h.backend.inferenceRequests.length < 1) await new Promise((r) => setTimeout(r, 50));
      await testClient().setBalance({ address: facilitator, value: 0n });
      release();
      await (await answer).text();
      owed = await finalRow(h);
    } finally {
      await testClient().setBalance({ address: facilitator, value: funded });
      await signer.gasFunds(150_000n, { fresh: true });
      h.backend.set({ responseTokens: 16 });
    }
    assert.equal(owed.status, "debt", owed.error ?? "");
    assert.equal(owed.payer.toLowerCase(), buyer.address.toLowerCase());
    assert.equal(
      await h.ledger.payments.hasOpenDebt(owed.network, owed.payer),
      false,
      "its payer is not refused",
    );
    assert.equal(await h.devnet.usdcBalance(buyer.address), maxAtomic, "nothing moved");
    assert.ok(2n * owed.chargeAtomic! > maxAtomic, "two such charges are more than the payer holds");

    h.backend.clearRequests();
    const next = await pay();
    const text = await next.text();
    assert.equal(next.status, 402, text);
    const decoded = decodePaymentRequiredHeader(next.headers.get("payment-required"));
    assert.ok(decoded.ok);
    assert.match(decoded.paymentRequired.error ?? "", /^insufficient_funds: /);
    assert.equal(h.backend.inferenceRequests.length, 0, "no inference ran");

    const recovery = createPaymentRecovery({
      payments: h.ledger.payments,
      settlements: h.ledger.settlements,
      facilitator: h.gateway.facilitator,
      chain: chain(),
      network: h.devnet.network,
      facilitatorAddress: facilitator,
      graceMs: 60_000,
      settlingGraceMs: 120_000,
    });
    const pass = await recovery.runOnce();
    assert.ok(pass.debtsPaid >= 1, JSON.stringify(pass));
    assert.equal((await h.ledger.payments.get(owed.id))?.status, "settled", "the charge is collected");
    assert.equal(
      await h.devnet.usdcBalance(buyer.address),
      maxAtomic - owed.chargeAtomic!,
      "the payer paid the request it was served",
    );
  });
});

describe("an upto settlement reorganised away", () => {
  /**
   * Takes the newest block back: the new branch holds another transaction of the facilitator's key at the
   * nonce of its last one, so that transaction can never land again.
   */
  async function reorgFacilitatorsLast(alsoMined: `0x${string}`[] = []): Promise<void> {
    const key = privateKeyToAccount(h.devnet.accounts.facilitator.privateKey);
    const nonce = (await chain().getTransactionCount({ address: key.address })) - 1;
    const replacement = await key.signTransaction({
      chainId: h.devnet.chainId,
      type: "eip1559",
      to: key.address,
      value: 0n,
      nonce,
      gas: 21_000n,
      maxFeePerGas: 10_000_000_000n,
      maxPriorityFeePerGas: 1n,
    });
    const mined = [replacement, ...alsoMined].map((transaction) => [transaction, 0]);
    await testClient().request({ method: "anvil_reorg" as never, params: [1, mined] as never });
  }

  /** A recovery on the harness's ledger that reads settlements back as soon as they are booked. */
  const readingBack = () =>
    createPaymentRecovery({
      payments: h.ledger.payments,
      settlements: h.ledger.settlements,
      facilitator: h.gateway.facilitator,
      chain: chain(),
      network: h.devnet.network,
      facilitatorAddress: h.devnet.accounts.facilitator.address,
      graceMs: 60_000,
      settlingGraceMs: 120_000,
      confirmAfterMs: 0,
    });

  test("is reported by reconcile as a transaction the chain does not hold, and its authorization is not served again", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const { response, signature } = await paidChat(buyer.privateKey);
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    const payTo = h.devnet.accounts.payTo.address;
    const payToBefore = await h.devnet.usdcBalance(payTo);

    await reorgFacilitatorsLast();
    assert.equal(
      await h.devnet.usdcBalance(payTo),
      payToBefore - row.chargeAtomic!,
      "the chain took it back",
    );

    const replay = await postJson(h, "/v1/chat/completions", chat, { "payment-signature": signature });
    assert.equal(replay.status, 409, await replay.text());
    const report = await reconcileLedger({
      payments: h.ledger.payments,
      client: chain() as never,
      network: h.devnet.network,
      asset: h.devnet.contracts.usdc,
      payTo,
    });
    assert.deepEqual(
      report.differences.filter((difference) => difference.kind === "missing_on_chain"),
      [
        {
          kind: "missing_on_chain",
          paymentId: row.id,
          transaction: row.transaction,
          payer: row.payer,
          chargeAtomic: row.chargeAtomic!.toString(),
          transactionOnChain: false,
        },
      ],
    );

    // Read back by recovery: owed again, and settled again (the authorization is still valid), once.
    const buyerAfterFirst = await h.devnet.usdcBalance(buyer.address);
    // Earlier tests' debts are retried in the same pass: what they pay is counted apart.
    const otherDebts = (await h.ledger.payments.openDebts()).filter((other) => other.id !== row.id);
    // Found missing by one pass, acted on by a later one (a node that has not indexed it answers the same).
    const recovery = readingBack();
    const first = await recovery.runOnce();
    assert.equal(first.takenBack, 0, JSON.stringify(first));
    assert.equal((await h.ledger.payments.get(row.id))?.status, "settled", "not acted on at first sight");
    const pass = await recovery.runOnce();
    assert.equal(pass.takenBack, 1, JSON.stringify(pass));
    assert.ok(pass.debtsPaid >= 1, JSON.stringify(pass));
    const again = await h.ledger.payments.get(row.id);
    assert.equal(again?.status, "settled");
    assert.notEqual(again?.transaction, row.transaction, "settled by a new transaction");
    assert.equal(again?.chargeAtomic, row.chargeAtomic);
    let othersPaid = 0n;
    for (const other of otherDebts)
      if ((await h.ledger.payments.get(other.id))?.status === "settled")
        othersPaid += other.chargeAtomic ?? 0n;
    assert.equal(
      await h.devnet.usdcBalance(payTo),
      payToBefore + othersPaid,
      "payTo is paid the charge exactly once",
    );
    assert.equal(await h.devnet.usdcBalance(buyer.address), buyerAfterFirst - row.chargeAtomic!);
    assert.equal(await h.ledger.payments.hasOpenDebt(row.network, row.payer), false);
    const clean = await reconcileLedger({
      payments: h.ledger.payments,
      client: chain() as never,
      network: h.devnet.network,
      asset: h.devnet.contracts.usdc,
      payTo,
    });
    assert.deepEqual(
      clean.differences.filter((difference) => "paymentId" in difference && difference.paymentId === row.id),
      [],
    );
    // The new settlement is read back too, and holds.
    const next = await recovery.runOnce();
    assert.equal(next.takenBack, 0, JSON.stringify(next));
    assert.equal((await h.ledger.payments.get(row.id))?.transaction, again?.transaction);
  });

  test("whose authorization the payer spent in the new branch is left settled, its payer not refused (a node whose logs lag answers the same), and nothing is sent again", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const { response } = await paidChat(buyer.privateKey);
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    const payTo = h.devnet.accounts.payTo.address;
    const payToBefore = await h.devnet.usdcBalance(payTo);

    // The payer burns the authorization's nonce in the branch that replaces the settlement's block.
    const wallet = createWalletClient({
      account: privateKeyToAccount(buyer.privateKey),
      chain: { ...anvil, id: h.devnet.chainId },
      transport: http(h.devnet.rpcUrl),
    });
    const burn = await wallet.signTransaction(
      await wallet.prepareTransactionRequest({
        to: PERMIT2_ADDRESS,
        // Estimated on the branch where the nonce is spent already, it would run out of gas on the new one.
        gas: 100_000n,
        data: encodeFunctionData({
          abi: parseAbi(["function invalidateUnorderedNonces(uint256 wordPos, uint256 mask)"]),
          functionName: "invalidateUnorderedNonces",
          args: [BigInt(row.nonce) >> 8n, 1n << (BigInt(row.nonce) & 255n)],
        }),
      }),
    );
    await reorgFacilitatorsLast([burn]);
    const burned = await chain().getTransactionReceipt({ hash: keccak256(burn) });
    assert.equal(burned.status, "success", "the payer's nonce is spent in the new branch");
    const facilitatorNonce = await chain().getTransactionCount({
      address: h.devnet.accounts.facilitator.address,
    });

    const recovery = readingBack();
    await recovery.runOnce();
    const pass = await recovery.runOnce();
    assert.equal(pass.takenBack, 0, JSON.stringify(pass));
    const kept = await h.ledger.payments.get(row.id);
    assert.equal(kept?.status, "settled");
    assert.equal(kept?.transaction, row.transaction);
    assert.equal(
      await h.ledger.payments.hasOpenDebt(row.network, row.payer),
      false,
      "its payer is not refused",
    );
    assert.equal(await h.devnet.usdcBalance(payTo), payToBefore - row.chargeAtomic!, "nothing collected");
    assert.equal(
      await chain().getTransactionCount({ address: h.devnet.accounts.facilitator.address }),
      facilitatorNonce,
      "no settlement was sent again",
    );
  });
  test("a settlement a lagging node does not show yet (no receipt, no logs) is left settled, and its payer is served", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    const { response } = await paidChat(buyer.privateKey);
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    const hidden = row.transaction!.toLowerCase();
    // A node whose state is current but that has not indexed this transaction nor any logs yet.
    const lagging = createServer(async (request, answer) => {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks).toString();
      const call = JSON.parse(body) as { id: number; method: string; params: unknown[] };
      const unindexed =
        ((call.method === "eth_getTransactionReceipt" || call.method === "eth_getTransactionByHash") &&
          String(call.params[0]).toLowerCase() === hidden) ||
        call.method === "eth_getLogs";
      const text = unindexed
        ? JSON.stringify({ jsonrpc: "2.0", id: call.id, result: call.method === "eth_getLogs" ? [] : null })
        : await (
            await fetch(h.devnet.rpcUrl, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body,
            })
          ).text();
      answer.writeHead(200, { "content-type": "application/json" });
      answer.end(text);
    });
    await new Promise<void>((resolve) => lagging.listen(0, "127.0.0.1", resolve));
    try {
      const recovery = createPaymentRecovery({
        payments: h.ledger.payments,
        settlements: h.ledger.settlements,
        facilitator: h.gateway.facilitator,
        chain: createPublicClient({
          chain: { ...anvil, id: h.devnet.chainId },
          transport: http(`http://127.0.0.1:${(lagging.address() as AddressInfo).port}`),
        }),
        network: h.devnet.network,
        facilitatorAddress: h.devnet.accounts.facilitator.address,
        graceMs: 60_000,
        settlingGraceMs: 120_000,
        confirmAfterMs: 0,
      });
      await recovery.runOnce();
      const pass = await recovery.runOnce();
      assert.equal(pass.takenBack, 0, JSON.stringify(pass));
    } finally {
      lagging.closeAllConnections();
      lagging.close();
    }
    const kept = await h.ledger.payments.get(row.id);
    assert.equal(kept?.status, "settled");
    assert.equal(kept?.transaction, row.transaction, "its transaction is kept");
    assert.equal(await h.ledger.payments.hasOpenDebt(row.network, row.payer), false);
    const { response: next } = await paidChat(buyer.privateKey);
    assert.equal(next.status, 200, await next.clone().text());
    await next.text();
  });
});
