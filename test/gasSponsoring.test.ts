import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { PERMIT2_ADDRESS } from "@x402/evm";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { type Address, createPublicClient, createWalletClient, erc20Abi, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createPayingFetch } from "../src/buyer/index.js";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { createFacilitator, serveFacilitator } from "../src/facilitator/index.js";
import type { GatewayConfigInput } from "../src/gateway/index.js";
import { createMemoryPayerQuotas, type SqlClient, type SqlExecutor } from "../src/ledger/index.js";
import {
  decodePaymentRequiredHeader,
  encodePaymentSignatureHeader,
  type PaymentPayload,
} from "../src/protocol/index.js";
import { TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";
import {
  expectedCharge,
  type GatewayHarness,
  startGatewayHarness,
  startGatewayOnLedger,
} from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { finalRow, postJson } from "./support/paidRequests.js";
import { parsePrometheusText, sumOf } from "./support/prometheusText.js";
import { recordingFetch } from "./support/recordingFetch.js";
import { runCli } from "./support/runCli.js";

const chatBody = {
  model: mockModelId,
  messages: [{ role: "user", content: "Say something" }],
  max_tokens: 20,
};

type Completion = { usage: { prompt_tokens: number; completion_tokens: number } };

function hasPermit(payload: PaymentPayload | undefined): boolean {
  return payload?.extensions?.eip2612GasSponsoring !== undefined;
}

describe("gas-sponsored Permit2 approval", () => {
  let h: GatewayHarness;
  let chain: ReturnType<typeof createPublicClient>;
  const logs: Array<Record<string, unknown>> = [];

  const allowanceOf = (owner: Address) =>
    chain.readContract({
      address: h.devnet.contracts.usdc,
      abi: erc20Abi,
      functionName: "allowance",
      args: [owner, PERMIT2_ADDRESS],
    });
  const nativeOf = (owner: Address) => chain.getBalance({ address: owner });
  const sponsoredApprovals = async (kind: string) =>
    sumOf(parsePrometheusText(await h.gateway.metrics.metrics()), "tollgate_sponsored_approvals_total", {
      network: h.devnet.network,
      kind,
    });

  before(async () => {
    h = await startGatewayHarness();
    chain = createPublicClient({ transport: http(h.devnet.rpcUrl) });
  });
  after(async () => {
    await h?.close();
  });

  test("the facilitator lists eip2612GasSponsoring in /supported, in process and over HTTP", async () => {
    const supported = await h.gateway.facilitator.getSupported();
    assert.deepEqual(supported.extensions, ["eip2612GasSponsoring"]);
    const facilitator = createFacilitator({
      rpcUrl: h.devnet.rpcUrl,
      privateKey: h.devnet.accounts.facilitator.privateKey,
      network: h.devnet.network,
    });
    const served = await serveFacilitator({ facilitator, token: TEST_FACILITATOR_TOKEN, port: 0 });
    try {
      const body = (await (await fetch(`${served.url}/supported`)).json()) as { extensions: string[] };
      assert.deepEqual(body.extensions, ["eip2612GasSponsoring"]);
    } finally {
      await served.close();
    }
    const off = createFacilitator({
      rpcUrl: h.devnet.rpcUrl,
      privateKey: h.devnet.accounts.facilitator.privateKey,
      network: h.devnet.network,
      gasSponsoring: { enabled: false },
    });
    assert.deepEqual((await off.getSupported()).extensions, []);
  });

  test("the 402 declares eip2612GasSponsoring for the upto offer", async () => {
    const response = await postJson(h, "/v1/chat/completions", chatBody);
    assert.equal(response.status, 402);
    const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    const declared = decoded.paymentRequired.extensions?.eip2612GasSponsoring as {
      info: { version: string };
    };
    assert.equal(declared.info.version, "1");
    assert.ok(decoded.paymentRequired.accepts.some((offer) => offer.scheme === "upto"));
  });

  test("the official @x402/fetch client pays from a wallet holding only USDC, and the facilitator pays the gas", async () => {
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    assert.equal(await allowanceOf(buyer.address), 0n);
    assert.equal(await nativeOf(buyer.address), 0n);
    const facilitatorBefore = await nativeOf(h.devnet.accounts.facilitator.address);
    const signer = privateKeyToAccount(buyer.privateKey);
    const client = new x402Client()
      .register(h.devnet.network, new UptoEvmScheme(signer, { rpcUrl: h.devnet.rpcUrl }))
      .setSpendControls(false);
    const sponsoredBefore = await sponsoredApprovals("eip2612GasSponsoring");
    const recorder = recordingFetch();
    const paying = wrapFetchWithPayment(recorder.fetch, client);
    const response = await paying(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(chatBody),
    });
    const completion = (await response.json()) as Completion;
    assert.equal(response.status, 200);
    assert.ok(hasPermit(recorder.payloads[0]), "the payment carried an EIP-2612 permit");
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
    assert.equal(BigInt(receipt.amount!), charge);
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(await h.devnet.usdcBalance(buyer.address), 10_000_000n - charge);
    assert.ok((await allowanceOf(buyer.address)) > 0n, "Permit2 is now approved");
    assert.equal(await nativeOf(buyer.address), 0n, "the buyer spent no native gas");
    const tx = await chain.getTransactionReceipt({ hash: receipt.transaction as Hex });
    assert.equal(tx.from.toLowerCase(), h.devnet.accounts.facilitator.address.toLowerCase());
    assert.ok((await nativeOf(h.devnet.accounts.facilitator.address)) < facilitatorBefore);
    logs.push({ officialSponsoredSettleGas: tx.gasUsed });
    assert.equal(
      await sponsoredApprovals("eip2612GasSponsoring"),
      sponsoredBefore + 1,
      "the facilitator counts the sponsored approval in the gateway's registry",
    );
  });

  test("Tollgate's paying fetch pays a fresh wallet's requests with sponsored permits while the allowance falls short, then without", async () => {
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    const recorder = recordingFetch();
    const paying = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      fetch: recorder.fetch,
    });
    const ask = async (body: Record<string, unknown>) => {
      const response = await paying(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const completion = (await response.json()) as Completion;
      assert.equal(response.status, 200);
      const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
      assert.equal(
        BigInt(receipt.amount!),
        expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens),
      );
      await finalRow(h);
      const signed = recorder.payloads.at(-1)!;
      const gasUsed = (await chain.getTransactionReceipt({ hash: receipt.transaction as Hex })).gasUsed;
      return { signed, amount: BigInt(receipt.amount!), gasUsed };
    };
    try {
      // A large maximum first (the mock answers 16 tokens): its permit approves that maximum, and only the usage is charged.
      const first = await ask({ ...chatBody, max_tokens: 256 });
      assert.ok(hasPermit(first.signed), "the first payment carried an EIP-2612 permit");
      const permitted = BigInt(
        (first.signed.payload as { permit2Authorization: { permitted: { amount: string } } })
          .permit2Authorization.permitted.amount,
      );
      assert.equal(await allowanceOf(buyer.address), permitted - first.amount);
      assert.equal(await nativeOf(buyer.address), 0n);

      const second = await ask({ ...chatBody, max_tokens: 8 });
      assert.equal(hasPermit(second.signed), false, "the remaining allowance covers it: no permit");
      assert.equal(await nativeOf(buyer.address), 0n);
      assert.ok(first.gasUsed > second.gasUsed);
      logs.push({
        sponsoredSettleGas: first.gasUsed,
        plainSettleGas: second.gasUsed,
        approvalGas: first.gasUsed - second.gasUsed,
      });
      console.log(`gas: ${JSON.stringify(logs, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}`);
    } finally {
      await paying.close();
    }
  });

  test("tollgate chat pays from a wallet holding only USDC", async () => {
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    const run = await runCli(
      [
        "chat",
        "--gateway",
        h.gateway.url,
        "--model",
        mockModelId,
        "--rpc",
        h.devnet.rpcUrl,
        "--max-tokens",
        "8",
        "Hi",
      ],
      { TOLLGATE_PRIVATE_KEY: buyer.privateKey, TOLLGATE_DATA_DIR: "memory://" },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^paid \$[0-9.]+ of \$[0-9.]+ authorized/m);
    assert.ok((await allowanceOf(buyer.address)) > 0n);
    assert.equal(await nativeOf(buyer.address), 0n);
    assert.ok((await h.devnet.usdcBalance(buyer.address)) < 10_000_000n);
  });

  /** Signs a real upto payment for the 402 with a permit, then lets `bend` spoil the permit. */
  async function sponsoredPayment(
    privateKey: Hex,
    bend: (info: Record<string, unknown>) => Promise<void> | void,
  ): Promise<string> {
    const response = await postJson(h, "/v1/chat/completions", chatBody);
    const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    const offer = decoded.paymentRequired.accepts.find((candidate) => candidate.scheme === "upto")!;
    const scheme = new UptoEvmScheme(privateKeyToAccount(privateKey), { rpcUrl: h.devnet.rpcUrl });
    const created = await scheme.createPaymentPayload(2, offer, {
      extensions: decoded.paymentRequired.extensions,
    });
    assert.ok(created.extensions?.eip2612GasSponsoring, "the scheme signed a permit");
    const info = (created.extensions.eip2612GasSponsoring as { info: Record<string, unknown> }).info;
    await bend(info);
    return encodePaymentSignatureHeader({
      x402Version: 2,
      resource: decoded.paymentRequired.resource,
      accepted: offer,
      payload: created.payload,
      extensions: created.extensions,
    } as PaymentPayload);
  }

  async function refusedReason(header: string): Promise<string> {
    const before = h.backend.inferenceRequests.length;
    const response = await postJson(h, "/v1/chat/completions", chatBody, { "payment-signature": header });
    await response.text();
    assert.equal(response.status, 402);
    assert.equal(h.backend.inferenceRequests.length, before, "no inference ran");
    const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    return decoded.paymentRequired.error ?? "";
  }

  test("a fresh wallet's requests sent at once, each with a permit on the same token nonce, are served only as far as they can be settled: none is left unpaid", async () => {
    const { buyer, client } = await freshUptoBuyer(h.devnet);
    const recorder = recordingFetch();
    const paying = wrapFetchWithPayment(recorder.fetch, client);
    const servedBefore = h.backend.inferenceRequests.length;
    // Other maxima, so each permit approves another amount; all sign the token's nonce 0.
    const responses = await Promise.all(
      [20, 70, 120, 170].map((maxTokens) =>
        paying(`${h.gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...chatBody, max_tokens: maxTokens }),
        }),
      ),
    );
    const texts = await Promise.all(responses.map((response) => response.text()));
    assert.ok(recorder.payloads.every(hasPermit), "every payment carried a permit");
    const served = responses.filter((response) => response.status === 200).length;
    assert.ok(served >= 1, "one request is served");
    for (const [i, response] of responses.entries())
      if (response.status !== 200) {
        assert.equal(response.status, 402, texts[i] ?? "");
        const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
        assert.ok(decoded.ok);
        assert.match(decoded.paymentRequired.error ?? "", /EIP-2612 permit/);
      }
    assert.equal(h.backend.inferenceRequests.length - servedBefore, served, "only the served ran inference");
    const ofPayer = async () =>
      (await h.ledger.payments.recent({ limit: 20 })).filter(
        (row) => row.payer.toLowerCase() === buyer.address.toLowerCase(),
      );
    let rows = await ofPayer();
    for (let i = 0; i < 400 && !rows.every((row) => row.status === "settled"); i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      rows = await ofPayer();
    }
    assert.deepEqual(
      rows.map((row) => row.status),
      Array(served).fill("settled"),
      "every served request settled, none a debt",
    );
  });

  /**
   * A second gateway on the devnet whose ledger holds the claim of the payment on Permit2 nonce `hold(nonce)`
   * (after its verify and funds read) until `letGo()`; `claimHeld` resolves once it is held.
   */
  async function sellerHoldingClaim() {
    let heldNonce: string | undefined;
    let onHeld!: () => void;
    const claimHeld = new Promise<void>((resolve) => {
      onHeld = resolve;
    });
    let letGo!: () => void;
    const released = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const holding = <T extends SqlExecutor>(executor: T): T => ({
      ...executor,
      async query(text: string, params?: readonly unknown[]) {
        if (heldNonce !== undefined && text.includes("INSERT INTO payments") && params?.includes(heldNonce)) {
          heldNonce = undefined;
          onHeld();
          await released;
        }
        return executor.query(text, params);
      },
    });
    const seller = await startGatewayHarness({
      devnet: h.devnet,
      configure: (input) => ({
        ...input,
        facilitator: { privateKey: h.devnet.accounts.buyers[2]!.privateKey },
      }),
      wrapSql: (sql): SqlClient => ({
        ...holding(sql),
        transaction: (fn) => sql.transaction((tx) => fn(holding(tx))),
      }),
    });
    const hold = (nonce: string) => {
      heldNonce = nonce;
    };
    return { seller, hold, claimHeld, letGo };
  }

  test("a payment verified on a permit that another of its payer's payments spends before it is admitted is not served on it: refused before inference, charged nothing, no debt", async () => {
    // The second payment's claim in the ledger is held, after its verify, until the first has settled.
    const { seller, hold, claimHeld, letGo } = await sellerHoldingClaim();
    try {
      const buyer = await h.devnet.createFreshBuyer(10_000_000n);
      const sign = async (maxTokens: number) => {
        const body = { ...chatBody, max_tokens: maxTokens };
        const response = await postJson(seller, "/v1/chat/completions", body);
        const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
        assert.ok(decoded.ok);
        const offer = decoded.paymentRequired.accepts.find((candidate) => candidate.scheme === "upto")!;
        const scheme = new UptoEvmScheme(privateKeyToAccount(buyer.privateKey), { rpcUrl: h.devnet.rpcUrl });
        const created = await scheme.createPaymentPayload(2, offer, {
          extensions: decoded.paymentRequired.extensions,
        });
        assert.ok(hasPermit(created as PaymentPayload), "the scheme signed a permit");
        const payload = {
          x402Version: 2,
          resource: decoded.paymentRequired.resource,
          accepted: offer,
          payload: created.payload,
          extensions: created.extensions,
        } as PaymentPayload;
        return { body, payload };
      };
      // Both permits are on the token's nonce 0; the first approves only its own small maximum.
      const first = await sign(20);
      const second = await sign(170);
      hold(
        (second.payload.payload as { permit2Authorization: { nonce: string } }).permit2Authorization.nonce,
      );
      const secondAnswer = postJson(seller, "/v1/chat/completions", second.body, {
        "payment-signature": encodePaymentSignatureHeader(second.payload),
      });
      await claimHeld;
      const firstAnswer = await postJson(seller, "/v1/chat/completions", first.body, {
        "payment-signature": encodePaymentSignatureHeader(first.payload),
      });
      const completion = (await firstAnswer.json()) as Completion;
      assert.equal(firstAnswer.status, 200);
      const firstRow = await finalRow(seller);
      assert.equal(firstRow.status, "settled", "the first payment settled on the permit");
      // The second was verified while the permit was unspent; its Permit2 allowance is now what the
      // first left of its own small permit, less than the second may cost.
      assert.ok((await allowanceOf(buyer.address)) < BigInt(second.payload.accepted.amount));
      letGo();
      const refused = await secondAnswer;
      const text = await refused.text();
      assert.equal(refused.status, 402, text);
      const decoded = decodePaymentRequiredHeader(refused.headers.get("payment-required"));
      assert.ok(decoded.ok);
      assert.match(
        decoded.paymentRequired.error ?? "",
        /^insufficient_funds: its EIP-2612 permit on token nonce 0 was spent by another payment of this payer/,
      );
      assert.equal(seller.backend.inferenceRequests.length, 1, "only the first ran inference");
      const rows = await seller.ledger.payments.recent({ limit: 5 });
      assert.deepEqual(
        rows.map((row) => row.status),
        ["failed", "settled"],
        "the second is failed, charged nothing: no debt",
      );
      const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
      assert.equal(
        await h.devnet.usdcBalance(buyer.address),
        10_000_000n - charge,
        "the payer paid the first only",
      );
    } finally {
      letGo();
      await seller.close();
    }
  });

  test("a Permit2 payment whose allowance was read before another of its payer's payments settled on a permit (which set that allowance anew) is not served on the old allowance: refused before inference, charged nothing, no debt", async () => {
    // The second payment's claim in the ledger is held, after its verify and its allowance read, until
    // the first has settled.
    const { seller, hold, claimHeld, letGo } = await sellerHoldingClaim();
    try {
      const buyer = await h.devnet.createBuyer(10_000_000n);
      const wallet = createWalletClient({
        account: privateKeyToAccount(buyer.privateKey),
        transport: http(h.devnet.rpcUrl),
      });
      const approve = async (amountAtomic: bigint) =>
        h.devnet.waitMined(
          await wallet.writeContract({
            address: h.devnet.contracts.usdc,
            abi: erc20Abi,
            functionName: "approve",
            args: [PERMIT2_ADDRESS, amountAtomic],
            chain: null,
          }),
        );
      const sign = async (maxTokens: number) => {
        const body = { ...chatBody, max_tokens: maxTokens };
        const response = await postJson(seller, "/v1/chat/completions", body);
        const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
        assert.ok(decoded.ok);
        const offer = decoded.paymentRequired.accepts.find((candidate) => candidate.scheme === "upto")!;
        const scheme = new UptoEvmScheme(privateKeyToAccount(buyer.privateKey), { rpcUrl: h.devnet.rpcUrl });
        const created = await scheme.createPaymentPayload(2, offer, {
          extensions: decoded.paymentRequired.extensions,
        });
        const payload = {
          x402Version: 2,
          resource: decoded.paymentRequired.resource,
          accepted: offer,
          payload: created.payload,
          extensions: created.extensions,
        } as PaymentPayload;
        return { body, payload };
      };
      // The first, signed with no allowance standing, carries a permit for its own small maximum; the
      // second, signed once the payer has approved Permit2 for much more, carries none.
      await approve(0n);
      const first = await sign(20);
      assert.ok(hasPermit(first.payload), "the first carries a permit");
      await approve(5_000_000n);
      const second = await sign(170);
      assert.ok(!hasPermit(second.payload), "the second carries none");
      hold(
        (second.payload.payload as { permit2Authorization: { nonce: string } }).permit2Authorization.nonce,
      );
      const secondAnswer = postJson(seller, "/v1/chat/completions", second.body, {
        "payment-signature": encodePaymentSignatureHeader(second.payload),
      });
      await claimHeld;
      const firstAnswer = await postJson(seller, "/v1/chat/completions", first.body, {
        "payment-signature": encodePaymentSignatureHeader(first.payload),
      });
      const completion = (await firstAnswer.json()) as Completion;
      assert.equal(firstAnswer.status, 200);
      const firstRow = await finalRow(seller);
      assert.equal(firstRow.status, "settled", "the first payment settled on its permit");
      // Its permit set the allowance to its own maximum, less what it paid: below the second's maximum.
      const allowance = await allowanceOf(buyer.address);
      assert.ok(allowance < BigInt(second.payload.accepted.amount));
      letGo();
      const refused = await secondAnswer;
      const text = await refused.text();
      assert.equal(refused.status, 402, text);
      const decoded = decodePaymentRequiredHeader(refused.headers.get("payment-required"));
      assert.ok(decoded.ok);
      // Told on the allowance read again, not the one read before the permit landed.
      assert.match(
        decoded.paymentRequired.error ?? "",
        new RegExp(
          `^insufficient_funds: this payer's payments in flight and its unpaid charges still to be settled already reserve 0 of the ${allowance} `,
        ),
      );
      assert.equal(seller.backend.inferenceRequests.length, 1, "only the first ran inference");
      const rows = await seller.ledger.payments.recent({ limit: 5 });
      assert.deepEqual(
        rows.map((row) => row.status),
        ["settled"],
        "the second is not claimed, charged nothing: no debt",
      );
      const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
      assert.equal(
        await h.devnet.usdcBalance(buyer.address),
        10_000_000n - charge,
        "the payer paid the first only",
      );
    } finally {
      letGo();
      await seller.close();
    }
  });

  test("refuses a forged permit before inference", async () => {
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    const stranger = privateKeyToAccount((await h.devnet.createFreshBuyer(0n)).privateKey);
    const header = await sponsoredPayment(buyer.privateKey, async (info) => {
      info.signature = await stranger.signMessage({ message: "not a permit" });
    });
    assert.match(await refusedReason(header), /^tollgate_eip2612_permit_invalid/);
    assert.equal(await allowanceOf(buyer.address), 0n);
  });

  test("refuses an expired permit before inference", async () => {
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    const header = await sponsoredPayment(buyer.privateKey, (info) => {
      info.deadline = String(Math.floor(Date.now() / 1000) - 60);
    });
    // The gateway's own bound comes first: the permit must outlive the request like the authorization.
    assert.match(await refusedReason(header), /^tollgate_authorization_expires_too_soon/);
  });

  test("refuses a permit for another spender, and one approving less than the payment", async () => {
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    const otherSpender = await sponsoredPayment(buyer.privateKey, (info) => {
      info.spender = h.devnet.accounts.payTo.address;
    });
    assert.match(await refusedReason(otherSpender), /^eip2612_spender_not_permit2/);
    const tooLittle = await sponsoredPayment(buyer.privateKey, (info) => {
      info.amount = "1";
    });
    assert.match(await refusedReason(tooLittle), /^permit2_2612_amount_mismatch/);
    assert.equal(await allowanceOf(buyer.address), 0n);
  });
});

describe("a seller that does not sponsor the approval", () => {
  let h: GatewayHarness;
  before(async () => {
    h = await startGatewayHarness({
      configure: (input) => ({
        ...input,
        facilitator: { ...(input.facilitator as object), gasSponsoring: { enabled: false } },
      }),
    });
  });
  after(async () => {
    await h?.close();
  });

  test("declares no gas sponsoring in its 402", async () => {
    const response = await postJson(h, "/v1/chat/completions", chatBody);
    await response.text();
    const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    assert.equal(decoded.paymentRequired.extensions, undefined);
  });

  test("a wallet without allowance is told to approve Permit2 or find a sponsoring seller, and signs nothing", async () => {
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    const recorder = recordingFetch();
    const paying = createPayingFetch({
      privateKey: buyer.privateKey,
      rpcUrl: h.devnet.rpcUrl,
      dataDir: "memory://",
      fetch: recorder.fetch,
    });
    try {
      await assert.rejects(
        paying(`${h.gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(chatBody),
        }),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, "TOLLGATE_PAYMENT_REQUIRED");
          assert.match(error.message, /approve Permit2 \(0x000000000022D473030F116dDEE9F6B43aC78BA3\)/);
          assert.match(error.message, new RegExp(h.devnet.contracts.usdc, "i"));
          assert.match(error.message, /seller that sponsors/);
          return true;
        },
      );
      assert.equal(recorder.payloads.length, 0);
    } finally {
      await paying.close();
    }
  });

  test("tollgate chat prints that sentence, not JSON, for a wallet without allowance", async () => {
    const buyer = await h.devnet.createFreshBuyer(10_000_000n);
    const run = await runCli(["chat", "--gateway", h.gateway.url, "--model", mockModelId, "Hi"], {
      TOLLGATE_PRIVATE_KEY: buyer.privateKey,
      TOLLGATE_DATA_DIR: "memory://",
    });
    assert.equal(run.code, 4, run.stderr);
    assert.match(run.stderr, /approve Permit2/);
    assert.doesNotMatch(run.stderr, /\{"/);
  });
});

describe("the facilitator's per-payer sponsoring limit", () => {
  let h: GatewayHarness;
  const perPayerLimit = 2;
  const configure = (input: GatewayConfigInput): GatewayConfigInput => ({
    ...input,
    facilitator: { ...(input.facilitator as object), gasSponsoring: { enabled: true, perPayerLimit } },
  });
  before(async () => {
    h = await startGatewayHarness({ configure });
  });
  after(async () => {
    await h?.close();
  });

  test("sponsors a fresh wallet's approvals up to the limit, then refuses with a stable reason and serves nothing", async () => {
    const { buyer, client } = await freshUptoBuyer(h.devnet);
    const recorder = recordingFetch();
    const paying = wrapFetchWithPayment(recorder.fetch, client);
    const ask = (maxTokens: number, gatewayUrl = h.gateway.url) =>
      paying(`${gatewayUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...chatBody, max_tokens: maxTokens }),
      });
    // Each maximum exceeds what the previous permit left approved, so each payment carries a new permit.
    const maxima = [8, 64, 256];
    for (const maxTokens of maxima.slice(0, perPayerLimit)) {
      const response = await ask(maxTokens);
      const completion = (await response.json()) as Completion;
      assert.equal(response.status, 200);
      assert.ok(
        hasPermit(recorder.payloads.at(-1)),
        `the payment for max_tokens ${maxTokens} carried a permit`,
      );
      const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
      assert.equal(
        BigInt(receipt.amount!),
        expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens),
      );
      assert.equal((await finalRow(h)).status, "settled");
    }
    const balanceBefore = await h.devnet.usdcBalance(buyer.address);
    const servedBefore = h.backend.inferenceRequests.length;
    const refused = await ask(maxima[perPayerLimit]!);
    await refused.text();
    assert.equal(refused.status, 402);
    assert.ok(hasPermit(recorder.payloads.at(-1)), "the refused payment carried a permit too");
    const decoded = decodePaymentRequiredHeader(refused.headers.get("payment-required"));
    assert.ok(decoded.ok);
    assert.match(
      decoded.paymentRequired.error ?? "",
      /^tollgate_gas_sponsoring_refused: this payer already had 2 sponsored Permit2 approvals \(limit 2\); approve Permit2 itself/,
    );
    assert.equal(h.backend.inferenceRequests.length, servedBefore, "no inference ran");
    assert.equal(await h.devnet.usdcBalance(buyer.address), balanceBefore, "nothing was charged");
    assert.equal(
      await createPublicClient({ transport: http(h.devnet.rpcUrl) }).getBalance({ address: buyer.address }),
      0n,
    );

    // The count is the ledger's: a gateway (and its facilitator) started again on it, or a replica beside
    // it, refuses the payer too.
    const replica = await startGatewayOnLedger(h, configure);
    try {
      const again = await ask(maxima[perPayerLimit]!, replica.url);
      await again.text();
      assert.equal(again.status, 402);
      const decodedAgain = decodePaymentRequiredHeader(again.headers.get("payment-required"));
      assert.ok(decodedAgain.ok);
      assert.match(
        decodedAgain.paymentRequired.error ?? "",
        /^tollgate_gas_sponsoring_refused: this payer already had 2 sponsored Permit2 approvals \(limit 2\)/,
      );
      assert.equal(h.backend.inferenceRequests.length, servedBefore, "no inference ran");
      assert.equal(await h.devnet.usdcBalance(buyer.address), balanceBefore, "nothing was charged");
    } finally {
      await replica.close();
    }

    // The limit is per payer: another fresh wallet is still sponsored.
    const other = await h.devnet.createFreshBuyer(10_000_000n);
    const otherClient = new x402Client()
      .register(
        h.devnet.network,
        new UptoEvmScheme(privateKeyToAccount(other.privateKey), { rpcUrl: h.devnet.rpcUrl }),
      )
      .setSpendControls(false);
    const otherResponse = await wrapFetchWithPayment(fetch, otherClient)(
      `${h.gateway.url}/v1/chat/completions`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...chatBody, max_tokens: maxima[perPayerLimit] }),
      },
    );
    await otherResponse.text();
    assert.equal(otherResponse.status, 200);
  });
});

describe("the facilitator's daily sponsoring limit across payers", () => {
  let h: GatewayHarness;
  before(async () => {
    h = await startGatewayHarness({
      configure: (input) => ({
        ...input,
        facilitator: {
          ...(input.facilitator as object),
          gasSponsoring: { enabled: true, perPayerLimit: 3, dailyLimit: 1 },
        },
      }),
    });
  });
  after(async () => {
    await h?.close();
  });

  test("bounds the approvals of all payers together: a second fresh wallet's permit is refused before inference, charged nothing", async () => {
    const pay = async () => {
      const { buyer, client } = await freshUptoBuyer(h.devnet);
      const recorder = recordingFetch();
      const response = await wrapFetchWithPayment(recorder.fetch, client)(
        `${h.gateway.url}/v1/chat/completions`,
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(chatBody),
        },
      );
      assert.ok(hasPermit(recorder.payloads.at(-1)), "the payment carried a permit");
      return { buyer, response };
    };
    const first = await pay();
    await first.response.text();
    assert.equal(first.response.status, 200);
    assert.equal((await finalRow(h)).status, "settled");
    const servedBefore = h.backend.inferenceRequests.length;
    const second = await pay();
    await second.response.text();
    assert.equal(second.response.status, 402);
    const decoded = decodePaymentRequiredHeader(second.response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    assert.match(
      decoded.paymentRequired.error ?? "",
      /^tollgate_gas_sponsoring_refused: this facilitator sponsored 1 Permit2 approvals in the last 24 h, its daily limit \(1\)/,
    );
    assert.equal(h.backend.inferenceRequests.length, servedBefore, "no inference ran");
    assert.equal(await h.devnet.usdcBalance(second.buyer.address), 10_000_000n, "nothing was charged");
  });
});

describe("one payer's permits sent at once to two sellers on one facilitator", () => {
  let devnet: Devnet;
  let remote: Awaited<ReturnType<typeof serveFacilitator>>;
  let first: GatewayHarness;
  let second: GatewayHarness;
  const quotas = createMemoryPayerQuotas();
  before(async () => {
    devnet = await startDevnet({ buyers: 1 });
    remote = await serveFacilitator({
      facilitator: createFacilitator({
        rpcUrl: devnet.rpcUrl,
        privateKey: devnet.accounts.facilitator.privateKey,
        network: devnet.network,
        pollingIntervalMs: 20,
        gasSponsoring: { enabled: true, perPayerLimit: 1 },
        payerQuotas: quotas,
        // The permit nonce's hold would refuse the second payment at verify, before its sponsored use is
        // taken (test/officialSellerPermitRace.test.ts): off here, so the use's own count is what refuses.
        holdPermits: false,
      }),
      token: TEST_FACILITATOR_TOKEN,
      port: 0,
    });
    const onRemote = (input: GatewayConfigInput): GatewayConfigInput => ({
      ...input,
      facilitator: { url: remote.url, token: TEST_FACILITATOR_TOKEN },
    });
    first = await startGatewayHarness({ devnet, configure: onRemote });
    second = await startGatewayHarness({ devnet, configure: onRemote });
  });
  after(async () => {
    await first?.close();
    await second?.close();
    await remote?.close();
    await devnet?.stop();
  });

  test("are sponsored no more than perPayerLimit: the use is taken before serving, so one is served and settled and the other refused before inference, charged nothing", async () => {
    const { buyer, client } = await freshUptoBuyer(devnet);
    // Both signed before either is sent, each on its seller's 402: each carries a permit on the same token nonce.
    const signed = await Promise.all(
      [first, second].map(async (gateway) => {
        const offered = await postJson(gateway, "/v1/chat/completions", chatBody);
        await offered.text();
        const decoded = decodePaymentRequiredHeader(offered.headers.get("payment-required"));
        assert.ok(decoded.ok);
        return { gateway, payload: await client.createPaymentPayload(decoded.paymentRequired) };
      }),
    );
    assert.ok(
      signed.every(({ payload }) => hasPermit(payload as PaymentPayload)),
      "both carry a permit",
    );
    const responses = await Promise.all(
      signed.map(async ({ gateway, payload }) => {
        const response = await postJson(gateway, "/v1/chat/completions", chatBody, {
          "payment-signature": encodePaymentSignatureHeader(payload as PaymentPayload),
        });
        return { gateway, response, text: await response.text() };
      }),
    );
    const statuses = responses.map(({ response }) => response.status).sort();
    assert.deepEqual(statuses, [200, 402], JSON.stringify(responses.map(({ text }) => text)));
    const refused = responses.find(({ response }) => response.status === 402)!;
    const decoded = decodePaymentRequiredHeader(refused.response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    assert.match(
      decoded.paymentRequired.error ?? "",
      /^tollgate_gas_sponsoring_refused: (the sponsored approval is refused: )?this payer already had 1 sponsored Permit2 approvals \(limit 1\); approve Permit2 itself/,
    );
    assert.equal(refused.gateway.backend.inferenceRequests.length, 0, "the refused one ran no inference");
    const served = responses.find(({ response }) => response.status === 200)!;
    const settled = await finalRow(served.gateway);
    assert.equal(settled.status, "settled");
    assert.equal(
      await devnet.usdcBalance(buyer.address),
      10_000_000n - (settled.chargeAtomic ?? 0n),
      "the payer paid the one it was served",
    );
    assert.equal(
      (await quotas.uses({ kind: "sponsored_approval", network: devnet.network, payer: buyer.address }))
        .length,
      1,
      "one sponsored approval counted",
    );
  });
});

/** A fresh wallet holding 10 USDC and no Permit2 approval, and the official upto client that signs for it. */
async function freshUptoBuyer(devnet: Devnet) {
  const buyer = await devnet.createFreshBuyer(10_000_000n);
  const client = new x402Client()
    .register(
      devnet.network,
      new UptoEvmScheme(privateKeyToAccount(buyer.privateKey), { rpcUrl: devnet.rpcUrl }),
    )
    .setSpendControls(false);
  return { buyer, client };
}
