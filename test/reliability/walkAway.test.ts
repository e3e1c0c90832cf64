import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { PERMIT2_ADDRESS } from "@x402/evm";
import { createWalletClient, erc20Abi, type Hex, http, maxUint256 } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { KeyedAccount } from "../../src/devnet/index.js";
import { parseReceiptEvent } from "../../src/protocol/index.js";
import { type GatewayHarness, officialPayingFetch, startGatewayHarness } from "../support/gatewayHarness.js";
import { holdStreams, mockModelId } from "../support/mockBackend.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness();
});
after(async () => {
  await h?.close();
});

const chatBody = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "keep talking while I leave" }],
  max_tokens: 200,
  stream: true,
});

const walletOf = (buyer: KeyedAccount) =>
  createWalletClient({ account: privateKeyToAccount(buyer.privateKey), transport: http(h.devnet.rpcUrl) });

/** Starts a paid stream, lets `walkAway` run once the gateway has verified and begun, then reads to the end. */
async function payAndWalkAway(buyer: KeyedAccount, walkAway: () => Promise<Hex>) {
  const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
  h.backend.set({ responseTokens: 40, tokensPerSecond: 50, reportUsage: true });
  // The stream waits after 4 chunks until the walk-away is mined: it always lands before settlement.
  const release = holdStreams(h.backend, 4);
  let response: Response;
  try {
    response = await pay(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody,
    });
    assert.equal(response.status, 200, "verified: the buyer had the funds and the approval");
    await h.devnet.waitMined(await walkAway());
  } finally {
    release();
  }
  const text = await response.text();
  const receiptLine = text.split("\n").find((line) => line.includes("x402_receipt"));
  assert.ok(receiptLine);
  const parsed = parseReceiptEvent(receiptLine);
  assert.ok(parsed.ok);
  const [row] = await h.ledger.payments.recent({ limit: 1 });
  assert.ok(row);
  return { receipt: parsed.receipt, row, pay };
}

async function refusedNextTime(pay: typeof fetch) {
  h.backend.clearRequests();
  const next = await pay(`${h.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: chatBody,
  });
  const text = await next.text();
  const reason = next.status === 200 ? "" : ((JSON.parse(text) as { error?: string }).error ?? "");
  return { status: next.status, reason, backendCalls: h.backend.inferenceRequests.length };
}

describe("the payer walks away between verify and settle", () => {
  test("moves its funds out: a debt of at most one request's maximum, and the payer is refused", async (t) => {
    const buyer = await h.devnet.createBuyer(1_000_000n);
    const payToBefore = await h.devnet.usdcBalance(h.devnet.accounts.payTo.address);
    const { receipt, row, pay } = await payAndWalkAway(buyer, () =>
      walletOf(buyer).writeContract({
        chain: null,
        address: h.devnet.contracts.usdc,
        abi: erc20Abi,
        functionName: "transfer",
        args: [h.devnet.accounts.deployer.address, 1_000_000n],
      }),
    );
    const refused = await refusedNextTime(pay);
    const retried = await h.gateway.recovery.runOnce();
    t.diagnostic(
      `walk-away (funds moved out): receipt success ${receipt.success} (${receipt.errorReason}); ledger ${row.status}, owed ${row.chargeAtomic} of max ${row.maxAtomic} (exposure ≤ one request's maximum); next request ${refused.status} "${refused.reason.slice(0, 40)}…", backend calls ${refused.backendCalls}; debt retry paid ${retried.debtsPaid} of ${retried.debtsRetried}`,
    );
    assert.equal(receipt.success, false);
    assert.equal(row.status, "debt");
    assert.ok(row.chargeAtomic! > 0n && row.chargeAtomic! <= row.maxAtomic);
    assert.equal(refused.status, 402);
    assert.match(refused.reason, /debt/);
    assert.equal(refused.backendCalls, 0);
    assert.equal(
      await h.devnet.usdcBalance(h.devnet.accounts.payTo.address),
      payToBefore,
      "nothing was paid",
    );
    assert.equal((await h.ledger.payments.get(row.id))?.status, "debt");
  });

  test("revokes its Permit2 approval: the same; once it approves again, the debt retry collects it", async (t) => {
    const buyer = await h.devnet.createBuyer(1_000_000n);
    const approve = (amount: bigint) =>
      walletOf(buyer).writeContract({
        chain: null,
        address: h.devnet.contracts.usdc,
        abi: erc20Abi,
        functionName: "approve",
        args: [PERMIT2_ADDRESS as Hex, amount],
      });
    const { receipt, row, pay } = await payAndWalkAway(buyer, () => approve(0n));
    const refused = await refusedNextTime(pay);
    assert.equal(receipt.success, false);
    assert.equal(row.status, "debt");
    assert.ok(row.chargeAtomic! <= row.maxAtomic);
    assert.equal(refused.status, 402);
    assert.equal(refused.backendCalls, 0);

    // The authorization is still within its deadline: the background debt retry settles it once allowed.
    await approve(maxUint256);
    const before = await h.devnet.usdcBalance(buyer.address);
    const retried = await h.gateway.recovery.runOnce();
    const paid = await h.ledger.payments.get(row.id);
    const moved = before - (await h.devnet.usdcBalance(buyer.address));
    const again = await refusedNextTime(pay);
    t.diagnostic(
      `walk-away (Permit2 approval revoked): owed ${row.chargeAtomic} of max ${row.maxAtomic}; next request ${refused.status}, backend calls ${refused.backendCalls}; after re-approval the debt retry paid ${retried.debtsPaid} (row ${paid?.status}, ${moved} atomic moved); next request ${again.status}`,
    );
    assert.equal(retried.debtsPaid, 1);
    assert.equal(paid?.status, "settled");
    assert.equal(moved, row.chargeAtomic);
    assert.equal(again.status, 200);
  });
});
