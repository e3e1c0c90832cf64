import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { createTestClient, createWalletClient, erc20Abi, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import {
  createFacilitator,
  findSettlementOnChain,
  type TollgateFacilitator,
} from "../src/facilitator/index.js";
import { createPaymentRecovery, type PaymentRecovery, reconcileLedger } from "../src/gateway/index.js";
import type { PaymentRecord, PaymentStatus } from "../src/ledger/index.js";
import { captureLogger } from "../src/ledger/testkit/captureLogger.js";
import { authorizationKey, decodePaymentRequiredHeader } from "../src/protocol/index.js";
import {
  type GatewayHarness,
  moveUsdcAway,
  officialBuyer,
  officialPayingFetch,
  startGatewayHarness,
} from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
import { spendPermit2Nonce } from "./support/permit2Nonces.js";
import { signUptoPayload } from "./support/uptoSigning.js";

let h: GatewayHarness;
let recovery: PaymentRecovery;
let upto: PaymentRequirements;

before(async () => {
  // The tests run their own passes: the gateway's own (every 15 s by default) would race them.
  h = await startGatewayHarness({
    configure: (input) => ({ ...input, recovery: { intervalSeconds: 3_600 } }),
  });
  const response = await fetch(`${h.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: mockModelId,
      messages: [{ role: "user", content: "hello" }],
      max_tokens: 64,
    }),
  });
  const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
  assert.ok(decoded.ok);
  const offer = decoded.paymentRequired.accepts.find((candidate) => candidate.scheme === "upto");
  assert.ok(offer);
  upto = offer as PaymentRequirements;
  recovery = createPaymentRecovery({
    payments: h.ledger.payments,
    settlements: h.ledger.settlements,
    facilitator: h.gateway.facilitator,
    chain: (h.gateway.facilitator as TollgateFacilitator).signer.publicClient,
    network: h.devnet.network,
    facilitatorAddress: upto.extra?.facilitatorAddress as string,
    graceMs: 0,
    settlingGraceMs: 0,
  });
});
after(async () => {
  await recovery?.stop();
  await h?.close();
});

/** A real signed authorization of a fresh buyer, claimed in the ledger and moved to `status`. */
async function paymentAt(
  status: PaymentStatus,
  { chargeAtomic = 1_111n, payload }: { chargeAtomic?: bigint; payload?: PaymentPayload } = {},
): Promise<{ row: PaymentRecord; payload: PaymentPayload; buyer: { address: Hex; privateKey: Hex } }> {
  const buyer = await h.devnet.createBuyer(1_000_000n);
  const signed =
    payload ??
    (await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload({
      x402Version: 2,
      resource: {
        url: `${h.gateway.url}/v1/chat/completions`,
        description: "test",
        mimeType: "application/json",
      },
      accepts: [upto],
    }));
  const key = authorizationKey(signed as Parameters<typeof authorizationKey>[0]);
  const claim = await h.ledger.payments.claim({
    ...key,
    scheme: "upto",
    model: mockModelId,
    route: "/v1/chat/completions",
    asset: upto.asset,
    payTo: upto.payTo,
    maxAtomic: BigInt(upto.amount),
    paymentPayload: signed,
    paymentRequirements: upto,
  });
  assert.ok(claim.claimed);
  const id = claim.payment.id;
  if (status !== "claimed") await h.ledger.payments.markServing(id);
  if (status === "metered" || status === "settling")
    await h.ledger.payments.recordUsage(id, { promptTokens: 10, completionTokens: 20 }, chargeAtomic);
  if (status === "settling") await h.ledger.payments.markSettling(id);
  const row = await h.ledger.payments.get(id);
  assert.ok(row);
  return { row, payload: signed, buyer: buyer as { address: Hex; privateKey: Hex } };
}

const statusOf = async (id: number) => (await h.ledger.payments.get(id))?.status;
const requirementsFor = (chargeAtomic: bigint) => ({ ...upto, amount: chargeAtomic.toString() });

describe("recovery of payments a killed gateway left pending", () => {
  test("claimed and serving rows end failed: usage unknown, nothing charged", async () => {
    const claimed = await paymentAt("claimed");
    const serving = await paymentAt("serving");
    const report = await recovery.runOnce();
    assert.ok(report.failed >= 2, JSON.stringify(report));
    assert.equal(await statusOf(claimed.row.id), "failed");
    assert.equal(await statusOf(serving.row.id), "failed");
    assert.equal(await h.devnet.usdcBalance(serving.buyer.address), 1_000_000n);
  });

  test("a metered row is settled from its recorded charge, once", async () => {
    const { row, buyer } = await paymentAt("metered", { chargeAtomic: 1_100n });
    await recovery.runOnce();
    const settled = await h.ledger.payments.get(row.id);
    assert.equal(settled?.status, "settled");
    assert.equal(settled?.chargeAtomic, 1_100n);
    assert.equal(await h.devnet.usdcBalance(buyer.address), 1_000_000n - 1_100n);
    await recovery.runOnce();
    assert.equal(
      await h.devnet.usdcBalance(buyer.address),
      1_000_000n - 1_100n,
      "a second pass moves nothing",
    );
  });

  test("a settling row whose nonce is unspent is settled again", async () => {
    const { row, buyer } = await paymentAt("settling", { chargeAtomic: 777n });
    await recovery.runOnce();
    assert.equal(await statusOf(row.id), "settled");
    assert.equal(await h.devnet.usdcBalance(buyer.address), 1_000_000n - 777n);
  });

  test("a settling row the facilitator already recorded takes the recorded transaction", async () => {
    const { row, payload, buyer } = await paymentAt("settling", { chargeAtomic: 900n });
    const sent = await h.gateway.facilitator.settle(payload, requirementsFor(900n));
    assert.equal(sent.success, true, String(sent.errorReason));
    await recovery.runOnce();
    const settled = await h.ledger.payments.get(row.id);
    assert.equal(settled?.status, "settled");
    assert.equal(settled?.transaction, sent.transaction);
    assert.equal(await h.devnet.usdcBalance(buyer.address), 1_000_000n - 900n);
  });

  test("a zero charge ends zero without a transaction", async () => {
    const { row } = await paymentAt("settling", { chargeAtomic: 0n });
    await recovery.runOnce();
    assert.equal(await statusOf(row.id), "zero");
  });

  test("a settling row whose transfer was mined before the crash is reconciled from the chain, not sent again", async () => {
    const { row, payload, buyer } = await paymentAt("settling", { chargeAtomic: 1_000n });
    // The crash: the transaction went out, and the facilitator's log still says in flight. (A second
    // facilitator on the gateway's key leaves the gateway's nonce manager behind: this test sends last.)
    await h.ledger.settlements.begin(row, 1_000n);
    const elsewhere = createFacilitator({
      rpcUrl: h.devnet.rpcUrl,
      privateKey: h.devnet.accounts.facilitator.privateKey,
      network: h.devnet.network,
      pollingIntervalMs: 20,
    });
    const sent = await elsewhere.settle(payload, requirementsFor(1_000n));
    assert.equal(sent.success, true, String(sent.errorReason));
    await recovery.runOnce();
    const settled = await h.ledger.payments.get(row.id);
    assert.equal(settled?.status, "settled");
    assert.equal(settled?.transaction, sent.transaction);
    assert.equal((await h.ledger.settlements.get(row))?.status, "succeeded");
    assert.equal(await h.devnet.usdcBalance(buyer.address), 1_000_000n - 1_000n, "charged exactly once");

    // However long ago it was mined (a gateway down over a weekend), recovery's search starts at the row's
    // creation, not a fixed number of blocks back, which would make the paid row a debt.
    await createTestClient({ mode: "anvil", transport: http(h.devnet.rpcUrl) }).mine({ blocks: 60 });
    const search = {
      client: (h.gateway.facilitator as TollgateFacilitator).signer.publicClient,
      payload,
      asset: upto.asset,
      payTo: upto.payTo,
      lookbackBlocks: 50n,
    };
    assert.equal((await findSettlementOnChain(search)).state, "spent_without_transfer", "60 blocks back");
    const found = await findSettlementOnChain({ ...search, since: row.createdAt });
    assert.equal(found.state === "settled" && found.transaction, sent.transaction);
  });

  test("a nonce spent without a transfer to payTo becomes a debt", async () => {
    const { row, buyer } = await paymentAt("settling", { chargeAtomic: 500n });
    // The payer burns the nonce itself (Permit2 invalidateUnorderedNonces).
    const wallet = createWalletClient({
      account: privateKeyToAccount(buyer.privateKey),
      transport: http(h.devnet.rpcUrl),
    });
    const nonce = BigInt(row.nonce);
    // anvil mines on send: once this returns, the nonce is spent.
    await spendPermit2Nonce(wallet, nonce);
    await recovery.runOnce();
    assert.equal(await statusOf(row.id), "debt");
    assert.equal(await h.ledger.payments.hasOpenDebt(row.network, row.payer), true, "its payer is refused");
    assert.equal(await h.devnet.usdcBalance(buyer.address), 1_000_000n);
  });

  test("a charge whose authorization lapsed while the gateway was down is the seller's loss: a debt on the books that does not refuse its payer", async () => {
    const buyer = await h.devnet.createBuyer(1_000_000n);
    // Signed for the quote's bound; the gateway was down until after its deadline.
    const lapsed = await signUptoPayload({
      privateKey: buyer.privateKey as Hex,
      requirements: upto,
      chainId: h.devnet.chainId,
      deadline: BigInt(Math.floor(Date.now() / 1000) - 10),
    });
    const { row } = await paymentAt("metered", { chargeAtomic: 700n, payload: lapsed });
    await recovery.runOnce();
    const debt = await h.ledger.payments.get(row.id);
    assert.equal(debt?.status, "debt");
    assert.equal(debt?.chargeAtomic, 700n, "the charge stays on the books, owed");
    assert.match(debt?.error ?? "", /^authorization_lapsed_unsettled:/);
    assert.equal(await h.devnet.usdcBalance(buyer.address as Hex), 1_000_000n, "nothing was taken");
    assert.equal(await h.ledger.payments.hasOpenDebt(row.network, row.payer), false);
    // The payer's next request is served and paid as any other.
    const response = await officialPayingFetch(buyer.privateKey as Hex, h.devnet.network)(
      `${h.gateway.url}/v1/chat/completions`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: mockModelId,
          messages: [{ role: "user", content: "hello again" }],
          max_tokens: 16,
        }),
      },
    );
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
  });

  test("debts signed to stay valid for ever do not take every debt retry: each open debt gets its turn", async () => {
    const retrying = createPaymentRecovery({
      payments: h.ledger.payments,
      settlements: h.ledger.settlements,
      facilitator: h.gateway.facilitator,
      chain: (h.gateway.facilitator as TollgateFacilitator).signer.publicClient,
      network: h.devnet.network,
      facilitatorAddress: upto.extra?.facilitatorAddress as string,
      graceMs: 0,
      settlingGraceMs: 0,
      debtRetriesPerPass: 1,
    });
    // A payer that walked away after being served, its authorization signed to stay valid for a century.
    const walker = await h.devnet.createBuyer(1_000_000n);
    const century = await signUptoPayload({
      privateKey: walker.privateKey as Hex,
      requirements: upto,
      chainId: h.devnet.chainId,
      deadline: BigInt(Math.floor(Date.now() / 1000) + 100 * 365 * 86_400),
    });
    const walked = await paymentAt("metered", { chargeAtomic: 900n, payload: century });
    await moveUsdcAway(h.devnet, walker.privateKey as Hex, 1_000_000n);
    // An honest payer whose funds were away when its charge was settled; it restores them in time.
    const honest = await paymentAt("metered", { chargeAtomic: 800n });
    await moveUsdcAway(h.devnet, honest.buyer.privateKey, 1_000_000n);
    await retrying.runOnce();
    assert.equal(await statusOf(walked.row.id), "debt");
    assert.equal(await statusOf(honest.row.id), "debt");
    await h.devnet.mintUsdc(honest.buyer.address, 1_000_000n);
    // However many debts are open, one retry a pass reaches each of them in as many passes.
    const open = (await h.ledger.payments.openDebts()).length;
    for (let pass = 0; pass < open && (await statusOf(honest.row.id)) === "debt"; pass++)
      await retrying.runOnce();
    assert.equal(await statusOf(honest.row.id), "settled", "the honest debt was retried and collected");
    assert.equal(await h.devnet.usdcBalance(honest.buyer.address), 1_000_000n - 800n);
    assert.equal(await statusOf(walked.row.id), "debt");
  });

  test("rows inside the grace period, and authorizations for another facilitator, are left alone", async () => {
    const patient = createPaymentRecovery({
      payments: h.ledger.payments,
      settlements: h.ledger.settlements,
      facilitator: h.gateway.facilitator,
      network: h.devnet.network,
      graceMs: 60_000,
      settlingGraceMs: 60_000,
    });
    const live = await paymentAt("serving");
    await patient.runOnce();
    assert.equal(await statusOf(live.row.id), "serving");

    const buyer = await h.devnet.createBuyer(1_000_000n);
    const foreign = await signUptoPayload({
      privateKey: buyer.privateKey,
      requirements: upto,
      chainId: h.devnet.chainId,
      facilitator: h.devnet.accounts.deployer.address,
    });
    const { row } = await paymentAt("metered", { payload: foreign });
    await recovery.runOnce();
    assert.equal(await statusOf(row.id), "metered", "only the facilitator the buyer named can settle it");
    await h.ledger.payments.markSettling(row.id);
    await h.ledger.payments.markSettled(row.id, { transaction: "", chargeAtomic: 0n });
  });

  test("rows only another facilitator can settle are told in one warning per pass: how many, their total and the facilitator they need", async () => {
    const { logger, records } = captureLogger();
    const watchful = createPaymentRecovery({
      payments: h.ledger.payments,
      settlements: h.ledger.settlements,
      facilitator: h.gateway.facilitator,
      network: h.devnet.network,
      facilitatorAddress: upto.extra?.facilitatorAddress as string,
      graceMs: 0,
      settlingGraceMs: 0,
      logger,
    });
    const other = h.devnet.accounts.deployer.address;
    const foreignRow = async (status: "metered" | "settling", chargeAtomic: bigint) => {
      const buyer = await h.devnet.createBuyer(1_000_000n);
      const payload = await signUptoPayload({
        privateKey: buyer.privateKey,
        requirements: upto,
        chainId: h.devnet.chainId,
        facilitator: other,
      });
      return (await paymentAt(status, { payload, chargeAtomic })).row;
    };
    const rows = [await foreignRow("metered", 1_100n), await foreignRow("settling", 900n)];
    try {
      const report = await watchful.runOnce();
      assert.ok(report.left >= 2, JSON.stringify(report));
      const warnings = records.filter((record) => /only by facilitator/.test(String(record.msg)));
      assert.equal(warnings.length, 1, "one warning for the pass, not one per row");
      const [warning] = warnings;
      assert.equal(warning?.level, 40, "a warning, not an info line");
      assert.equal(warning?.rows, 2);
      assert.equal(warning?.chargeAtomic, "2000");
      assert.deepEqual(warning?.facilitators, [other]);
      assert.match(
        String(warning?.msg),
        new RegExp(
          `2 upto payment\\(s\\), 2000 atomic units charged in all, can be settled only by facilitator ${other}, not by this gateway's \\(${upto.extra?.facilitatorAddress}\\): start a gateway on this ledger with that facilitator's key before the authorizations' deadlines \\(the first at \\d{4}-`,
        ),
      );
      for (const row of rows)
        assert.notEqual(await statusOf(row.id), "settled", "nor settled by this gateway");
    } finally {
      for (const row of rows) {
        if ((await statusOf(row.id)) === "metered") await h.ledger.payments.markSettling(row.id);
        await h.ledger.payments.markSettled(row.id, { transaction: "", chargeAtomic: 0n });
      }
    }
  });

  test("a grace shorter than a live request's heartbeat never fails a request being served: the passes while serving leave a row younger than three heartbeats alone", async () => {
    const hasty = createPaymentRecovery({
      payments: h.ledger.payments,
      settlements: h.ledger.settlements,
      facilitator: h.gateway.facilitator,
      network: h.devnet.network,
      graceMs: 0,
      settlingGraceMs: 0,
    });
    const live = await paymentAt("serving");
    hasty.start(20);
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      await hasty.stop();
    }
    assert.equal(await statusOf(live.row.id), "serving", "a request served now keeps its row");
    // The pass at start (nothing is served yet: every pending row is a stopped gateway's) takes it.
    await hasty.runOnce();
    assert.equal(await statusOf(live.row.id), "failed");
  });

  test("afterwards the ledger and the chain agree; a stray transfer to payTo is a difference", async () => {
    const client = (h.gateway.facilitator as TollgateFacilitator).signer.publicClient;
    const clean = await reconcileLedger({
      payments: h.ledger.payments,
      client,
      network: h.devnet.network,
      asset: upto.asset,
      payTo: upto.payTo,
    });
    assert.deepEqual(clean.differences, []);
    assert.equal(clean.ledger.settledAtomic, clean.chain.transferredAtomic);

    const stranger = await h.devnet.createBuyer(1_000n);
    const wallet = createWalletClient({
      account: privateKeyToAccount(stranger.privateKey),
      transport: http(h.devnet.rpcUrl),
    });
    const stray = await wallet.writeContract({
      chain: null,
      address: h.devnet.contracts.usdc,
      abi: erc20Abi,
      functionName: "transfer",
      args: [upto.payTo as Hex, 1_000n],
    });
    // Reconcile reads mined blocks: wait until the stray transfer is in one.
    await client.waitForTransactionReceipt({ hash: stray, pollingInterval: 20 });
    const dirty = await reconcileLedger({
      payments: h.ledger.payments,
      client,
      network: h.devnet.network,
      asset: upto.asset,
      payTo: upto.payTo,
    });
    assert.equal(dirty.differences.length, 1);
    assert.equal(dirty.differences[0]?.kind, "not_in_ledger");
  });
});
