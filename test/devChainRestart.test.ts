// `tollgate dev` keeps its ledger across runs but starts a new devnet each time: the same buyer key, receiver
// and salt give the same channel id on the new chain, for a new channel. The gateway must not apply the old
// chain's channel state (its charged total) to it, and the old payments must stay in the ledger.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, test } from "node:test";
import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import { type Address, createPublicClient, type Hex, http, type PublicClient } from "viem";
import { createPayingFetch } from "../src/buyer/index.js";
import { devGatewayConfig } from "../src/cli/devGatewayConfig.js";
import { startDemoBackend } from "../src/demo/index.js";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { readChannelState } from "../src/gateway/channels/index.js";
import { reconcileChannels, startGateway } from "../src/gateway/index.js";
import { type Ledger, openLedger } from "../src/ledger/index.js";
import { countTextTokens } from "../src/pricing/index.js";
import { eventLog, tempDataDir } from "./support/buyerFixtures.js";

const dirs: Array<Awaited<ReturnType<typeof tempDataDir>>> = [];
// What a failed assertion left open, closed last to first.
const cleanups: Array<() => Promise<void>> = [];
const closeAll = async () => {
  for (const cleanup of [...cleanups].reverse()) await cleanup().catch(() => undefined);
};
after(async () => {
  await closeAll();
  for (const dir of dirs) await dir.remove();
});

/** Runs `close` once, now or (when a test failed first) after the tests. */
function closeOnce(close: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  const once = () => {
    closing ??= close();
    return closing;
  };
  cleanups.push(once);
  return once;
}

type Paid = { channelId: Hex; chargedAtomic: bigint; gatewayRowAtomic: bigint; buyerRowAtomic: bigint };

/** One `tollgate dev` run's pieces: a fresh devnet, the demo backend, and dev's gateway over `ledger`. */
async function devRun(devnet: Devnet, ledger: Ledger) {
  const demo = await startDemoBackend({ countTokens: (text) => countTextTokens(text), tokensPerSecond: 0 });
  const closeDemo = closeOnce(() => demo.close());
  const config = devGatewayConfig({
    devnet,
    backendUrl: demo.url,
    modelId: demo.model,
    host: "127.0.0.1",
    port: 0,
    dataDir: "unused: the ledger is given",
    dashboardToken: "dev-run-dashboard-token",
  });
  const gateway = await startGateway({ config, ledger, pollingIntervalMs: 20 });
  const closeGateway = closeOnce(() => gateway.close());
  return {
    gateway,
    model: demo.model,
    /** Closes the gateway (its outstanding vouchers are claimed first) and the backend. */
    async close() {
      await closeGateway();
      await closeDemo();
    },
  };
}

/** Pays one chat by channel from the dev buyer, with no RPC (so no resync from the chain), and reads back each side's record. */
async function payOnce(
  run: Awaited<ReturnType<typeof devRun>>,
  devnet: Devnet,
  ledger: Ledger,
  buyerDir: string,
): Promise<Paid> {
  const log = eventLog();
  const payingFetch = createPayingFetch({
    privateKey: devnet.accounts.buyers[0]!.privateKey,
    dataDir: buyerDir,
    onEvent: log.onEvent,
  });
  try {
    const response = await payingFetch(`${run.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: run.model,
        messages: [{ role: "user", content: "tolls?" }],
        max_tokens: 12,
      }),
    });
    assert.equal(response.status, 200, await response.clone().text());
    await response.json();
    await payingFetch.idle();
    const [receipt] = log.of("receipt");
    assert.ok(receipt?.success, "a successful receipt");
    const reservation = await (await payingFetch.spendStore()).reservation(receipt.paymentId);
    assert.equal(reservation?.scheme, "batch-settlement");
    const [row] = await ledger.payments.recent({ limit: 1 });
    assert.ok(row, "the gateway's payment row");
    const channelId = (row.paymentPayload as { payload: { voucher: { channelId: Hex } } }).payload.voucher
      .channelId;
    return {
      channelId: channelId.toLowerCase() as Hex,
      chargedAtomic: receipt.chargedAtomic,
      gatewayRowAtomic: row.chargeAtomic ?? -1n,
      buyerRowAtomic: reservation?.chargedAtomic ?? -1n,
    };
  } finally {
    await payingFetch.close();
  }
}

const claimedOnChain = (devnet: Devnet, channelId: Hex) =>
  readChannelState(publicClient(devnet), BATCH_SETTLEMENT_ADDRESS as Address, channelId).then(
    (state) => state.totalClaimedAtomic,
  );
const publicClient = (devnet: Devnet) =>
  createPublicClient({ transport: http(devnet.rpcUrl) }) as unknown as PublicClient;

test("dev run twice on one ledger with two fresh devnets: the second run's channel starts from nothing, the first run's payments stay", async () => {
  const ledgerDir = await tempDataDir();
  dirs.push(ledgerDir);
  const dataDir = join(ledgerDir.path, "ledger");

  // First run: one payment by channel, claimed on the first chain when the gateway stops.
  const firstNet = await startDevnet();
  closeOnce(() => firstNet.stop());
  let first: Paid;
  try {
    const ledger = await openLedger({ dataDir });
    closeOnce(() => ledger.close());
    const run = await devRun(firstNet, ledger);
    const buyerDir = await tempDataDir();
    dirs.push(buyerDir);
    first = await payOnce(run, firstNet, ledger, buyerDir.path);
    await run.close();
    assert.ok(first.chargedAtomic > 0n);
    assert.equal(first.gatewayRowAtomic, first.chargedAtomic);
    assert.equal(first.buyerRowAtomic, first.chargedAtomic);
    assert.equal(await claimedOnChain(firstNet, first.channelId), first.chargedAtomic);
    assert.equal((await ledger.channels.get(first.channelId))?.chargedAtomic, first.chargedAtomic);
  } finally {
    await closeAll();
  }

  // Second run: a new devnet, the same ledger, a buyer that knows nothing of the first chain and has no RPC.
  const secondNet = await startDevnet();
  closeOnce(() => secondNet.stop());
  try {
    const ledger = await openLedger({ dataDir });
    closeOnce(() => ledger.close());
    const run = await devRun(secondNet, ledger);
    const buyerDir = await tempDataDir();
    dirs.push(buyerDir);
    const second = await payOnce(run, secondNet, ledger, buyerDir.path);
    assert.equal(second.channelId, first.channelId, "the same channel id on the new chain");
    assert.ok(second.chargedAtomic > 0n);
    assert.equal(second.gatewayRowAtomic, second.chargedAtomic);
    assert.equal(second.buyerRowAtomic, second.chargedAtomic);
    // The channel's charged total is this chain's only: the claim takes the second charge, not the first too.
    assert.equal((await ledger.channels.get(second.channelId))?.chargedAtomic, second.chargedAtomic);

    // A restart on the same chain keeps the channel: a third payment adds to it.
    await run.close();
    assert.equal(await claimedOnChain(secondNet, second.channelId), second.chargedAtomic);
    const again = await devRun(secondNet, ledger);
    const third = await payOnce(again, secondNet, ledger, buyerDir.path);
    await again.close();
    assert.equal(third.channelId, second.channelId);
    assert.equal(third.gatewayRowAtomic, third.chargedAtomic);
    const chargedHere = second.chargedAtomic + third.chargedAtomic;
    assert.equal((await ledger.channels.get(second.channelId))?.chargedAtomic, chargedHere);
    assert.equal(await claimedOnChain(secondNet, second.channelId), chargedHere);

    // The first chain's channel is set aside, whole; reconcile on this chain finds nothing amiss.
    const setAside = await ledger.channels.listSetAside();
    assert.deepEqual(
      setAside.map((c) => [c.channelId, c.chargedAtomic, c.totalClaimedAtomic]),
      [[first.channelId, first.chargedAtomic, first.chargedAtomic]],
    );
    const reconciled = await reconcileChannels({
      channels: ledger.channels,
      payments: ledger.payments,
      client: publicClient(secondNet),
      settlement: BATCH_SETTLEMENT_ADDRESS as Address,
      network: secondNet.network,
      asset: secondNet.contracts.usdc,
      payTo: secondNet.accounts.payTo.address,
    });
    assert.deepEqual(reconciled.differences, []);
    assert.equal(reconciled.channelCount, 1);
    assert.equal(reconciled.chargedAtomic, chargedHere);
    assert.equal(reconciled.claimedOnChainAtomic, chargedHere);

    // History: every payment of both runs is still in the ledger.
    const rows = await ledger.payments.recent({ limit: 10 });
    assert.deepEqual(rows.map((row) => [row.status, row.chargeAtomic]).reverse(), [
      ["settled", first.chargedAtomic],
      ["settled", second.chargedAtomic],
      ["settled", third.chargedAtomic],
    ]);
  } finally {
    await closeAll();
  }
});
