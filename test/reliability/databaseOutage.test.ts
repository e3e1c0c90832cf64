import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { x402Client } from "@x402/core/client";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import {
  createPaymentRecovery,
  type Gateway,
  type GatewayConfigInput,
  parseGatewayConfig,
  startGateway,
} from "../../src/gateway/index.js";
import { type Ledger, openPostgresLedger } from "../../src/ledger/index.js";
import { claimInput } from "../../src/ledger/testkit/ledgerHarness.js";
import { parseReceiptEvent } from "../../src/protocol/index.js";
import { channelTestConfig } from "../support/channelFixtures.js";
import { officialPayingFetch, testGatewayConfig } from "../support/gatewayHarness.js";
import { holdStreams, type MockBackend, mockModelId, startMockBackend } from "../support/mockBackend.js";
import { databaseUrl, freshSchema, needsPostgres, waitFor } from "./support/reliabilityEnv.js";

/**
 * A TCP proxy on loopback to the test's PostgreSQL, which a test cuts (every connection reset, new ones
 * refused) and restores, has lose the server's answer to the next statement that holds a text (the
 * server runs it; the gateway's connection is reset before it hears so), or has that statement fail
 * (its connection reset before the server gets it).
 */
async function startDatabaseProxy(target: URL) {
  const sockets = new Set<Socket>();
  let cut = false;
  let refused = 0;
  let loseAnswerTo: string | undefined;
  let failStatement: string | undefined;
  let answersLost = 0;
  const server = createServer((client) => {
    if (cut) {
      refused++;
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => undefined);
    }
    let losingAnswer = false;
    client.on("data", (chunk: Buffer) => {
      if (failStatement !== undefined && chunk.toString("latin1").includes(failStatement)) {
        failStatement = undefined;
        client.destroy();
        upstream.destroy();
        return;
      }
      // A query ('Q') or a statement to parse ('P') that holds the text.
      if (loseAnswerTo !== undefined && chunk.toString("latin1").includes(loseAnswerTo)) {
        loseAnswerTo = undefined;
        losingAnswer = true;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!losingAnswer) return void client.write(chunk);
      answersLost++;
      client.destroy();
      upstream.destroy();
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const url = new URL(target.href);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.href,
    /** Connections refused while cut. */
    get refused() {
      return refused;
    },
    cut() {
      cut = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      cut = false;
    },
    failNextStatement(text: string) {
      failStatement = text;
    },
    loseNextAnswerTo(text: string) {
      loseAnswerTo = text;
    },
    /** Statements the server answered and the gateway never heard of. */
    get answersLost() {
      return answersLost;
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let devnet: Devnet;
let backend: MockBackend;
const closers: Array<() => Promise<void>> = [];
before(async () => {
  if (needsPostgres) return;
  devnet = await startDevnet({ buyers: 2 });
  backend = await startMockBackend({ responseTokens: 12 });
});
after(async () => {
  for (const close of closers.reverse()) await close();
  await backend?.close();
  await devnet?.stop();
});

/** One gateway on the test's PostgreSQL, reached through a proxy the test cuts. */
async function gatewayBehindProxy(
  label: string,
  channels = false,
  configure: (input: GatewayConfigInput) => GatewayConfigInput = (input) => input,
) {
  const proxy = await startDatabaseProxy(new URL(databaseUrl!));
  closers.push(proxy.close);
  const { schema, drop } = await freshSchema(label);
  closers.push(drop);
  const ledger: Ledger = await openPostgresLedger({ connectionString: proxy.url, schema });
  closers.push(() => ledger.close());
  const gateway: Gateway = await startGateway({
    config: parseGatewayConfig(
      configure(
        channels
          ? channelTestConfig(testGatewayConfig({ devnet, backendUrl: backend.url }))
          : testGatewayConfig({ devnet, backendUrl: backend.url }),
      ),
    ),
    ledger,
    pollingIntervalMs: 20,
  });
  closers.push(() => gateway.close());
  return { proxy, ledger, gateway };
}

const streamBody = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "hi" }],
  max_tokens: 64,
  stream: true,
});

test("a stream delivered while the database is out is charged once it is back, not left for recovery to fail", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dbcut");
  const buyer = devnet.accounts.buyers[0]!;
  const before = await devnet.usdcBalance(buyer.address);
  const release = holdStreams(backend, 3);
  const response = await officialPayingFetch(buyer.privateKey, devnet.network)(
    `${gateway.url}/v1/chat/completions`,
    { method: "POST", headers: { "content-type": "application/json" }, body: streamBody },
  );
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value, { stream: true });
  // The database goes away while the answer is being delivered: the gateway finds it gone when it
  // records the charge (a connection it is refused), and it comes back while the buyer still reads.
  proxy.cut();
  let ended = false;
  const reading = (async () => {
    for (;;) {
      const next = await reader.read();
      if (next.done) return;
      text += decoder.decode(next.value, { stream: true });
    }
  })()
    .then(
      () => undefined,
      (error: unknown) => String(error),
    )
    .finally(() => {
      ended = true;
    });
  release();
  // Its first try may fail on a pooled connection the cut reset, without opening a new one.
  assert.ok(await waitFor(async () => proxy.refused > 0 || ended, 10_000), "the gateway tried the database");
  proxy.restore();
  const broken = await reading;
  assert.equal(broken, undefined, `the stream broke off after delivering: ${text.slice(-200)}`);
  const receiptLine = text.split("\n").find((line) => line.includes("x402_receipt"));
  assert.ok(receiptLine, "the receipt arrives once the database is back");
  const parsed = parseReceiptEvent(receiptLine);
  assert.ok(parsed.ok && parsed.receipt.success, JSON.stringify(parsed));
  const [row] = await ledger.payments.recent({ limit: 1 });
  assert.equal(row?.status, "settled");
  assert.ok(row!.completionTokens! > 0 && row!.chargeAtomic! > 0n);
  assert.equal(await devnet.usdcBalance(buyer.address), before - row!.chargeAtomic!);
});

/** `fetch` paying through a payment channel, as `@x402/evm`'s client does. */
function channelPayingFetch(privateKey: Hex): typeof fetch {
  const publicClient = createPublicClient({ chain: anvil, transport: http(devnet.rpcUrl) });
  const signer = toClientEvmSigner(privateKeyToAccount(privateKey), publicClient);
  return wrapFetchWithPayment(
    fetch,
    x402Client.fromConfig({
      schemes: [{ network: devnet.network, client: new BatchSettlementEvmScheme(signer) }],
      spendControls: false,
    }),
  ) as typeof fetch;
}

test("a channel stream delivered while the database is out is charged on its channel once it is back", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dbcutch", true);
  const buyer = devnet.accounts.buyers[1]!;
  const pay = channelPayingFetch(buyer.privateKey);
  const url = `${gateway.url}/v1/chat/completions`;
  const opened = await pay(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: streamBody.replace('"stream":true', '"stream":false'),
  });
  assert.equal(opened.status, 200, await opened.text());
  const [channel] = await ledger.channels.list();
  const chargedBefore = channel!.chargedAtomic;
  const release = holdStreams(backend, 3);
  const response = await pay(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: streamBody,
  });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value, { stream: true });
  proxy.cut();
  let ended = false;
  const reading = (async () => {
    for (;;) {
      const next = await reader.read();
      if (next.done) return;
      text += decoder.decode(next.value, { stream: true });
    }
  })()
    .then(
      () => undefined,
      (error: unknown) => String(error),
    )
    .finally(() => {
      ended = true;
    });
  release();
  assert.ok(await waitFor(async () => proxy.refused > 0 || ended, 10_000), "the gateway tried the database");
  proxy.restore();
  const broken = await reading;
  assert.equal(broken, undefined, `the stream broke off after delivering: ${text.slice(-200)}`);
  const receiptLine = text.split("\n").find((line) => line.includes("x402_receipt"));
  assert.ok(receiptLine, "the receipt arrives once the database is back");
  const parsed = parseReceiptEvent(receiptLine);
  assert.ok(parsed.ok && parsed.receipt.success, JSON.stringify(parsed));
  const [row] = await ledger.payments.recent({ limit: 1 });
  assert.equal(row?.status, "settled");
  assert.ok(row!.completionTokens! > 0 && row!.chargeAtomic! > 0n);
  const after = (await ledger.channels.get(channel!.channelId))!;
  assert.equal(after.chargedAtomic, chargedBefore + row!.chargeAtomic!, "the channel holds the charge");
  assert.equal(after.pending, undefined, "the channel is free for the buyer's next request");
});

test("a voucher's JSON answer whose charge committed though the database's answer was lost is delivered, not charged for nothing", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dbcommit", true);
  const buyer = await devnet.createBuyer(10_000_000n);
  const pay = channelPayingFetch(buyer.privateKey);
  const url = `${gateway.url}/v1/chat/completions`;
  const jsonBody = streamBody.replace('"stream":true', '"stream":false');
  const post = () =>
    pay(url, { method: "POST", headers: { "content-type": "application/json" }, body: jsonBody });
  const opened = await post();
  assert.equal(opened.status, 200, await opened.text());
  const [channel] = (await ledger.channels.list()).filter(
    (candidate) => candidate.payer.toLowerCase() === buyer.address.toLowerCase(),
  );
  const chargedBefore = channel!.chargedAtomic;
  // The backend answers only once the trap is set, so the next COMMIT is the charge's.
  backend.set({ firstTokenDelayMs: 500 });
  backend.clearRequests();
  const answering = post();
  assert.ok(await waitFor(async () => backend.inferenceRequests.length > 0, 10_000));
  proxy.loseNextAnswerTo("COMMIT");
  const response = await answering;
  backend.set({ firstTokenDelayMs: 0 });
  const text = await response.text();
  assert.equal(proxy.answersLost, 1, "the charge's COMMIT answer was lost");
  const after = (await ledger.channels.get(channel!.channelId))!;
  const [row] = await ledger.payments.recent({ limit: 1 });
  assert.equal(row?.status, "settled", "the server committed the charge");
  assert.equal(after.chargedAtomic, chargedBefore + row!.chargeAtomic!);
  assert.equal(response.status, 200, `charged ${row!.chargeAtomic} for: ${text}`);
  assert.ok(JSON.parse(text).choices[0].message.content.length > 0, "the answer charged for is delivered");
});

test("a stream whose usage the database recorded though its answer was lost is settled and told, not stopped", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dbusage");
  const buyer = devnet.accounts.buyers[1]!;
  const before = await devnet.usdcBalance(buyer.address);
  // The statement that records a served request's usage and charge (serving → metered).
  proxy.loseNextAnswerTo("prompt_tokens = $3");
  const response = await officialPayingFetch(buyer.privateKey, devnet.network)(
    `${gateway.url}/v1/chat/completions`,
    { method: "POST", headers: { "content-type": "application/json" }, body: streamBody },
  );
  assert.equal(response.status, 200);
  let text = "";
  const broken = await response.text().then(
    (body) => {
      text = body;
      return undefined;
    },
    (error: unknown) => String(error),
  );
  assert.equal(proxy.answersLost, 1, "the usage's answer was lost");
  assert.equal(broken, undefined, "the stream ends with its receipt");
  const receiptLine = text.split("\n").find((line) => line.includes("x402_receipt"));
  assert.ok(receiptLine, "the receipt arrives");
  const parsed = parseReceiptEvent(receiptLine);
  assert.ok(parsed.ok && parsed.receipt.success, JSON.stringify(parsed));
  const [row] = await ledger.payments.recent({ limit: 1 });
  assert.equal(row?.status, "settled");
  assert.equal(await devnet.usdcBalance(buyer.address), before - row!.chargeAtomic!, "charged once");
});

test("a settlement whose transfer went through while its record in the settlement log failed is told and booked as settled, not as a debt", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dblog");
  const buyer = await devnet.createBuyer(10_000_000n);
  const before = await devnet.usdcBalance(buyer.address);
  // The facilitator's record of the transfer it just made (in_flight → succeeded).
  proxy.failNextStatement("UPDATE settlements SET status = $4");
  const response = await officialPayingFetch(buyer.privateKey, devnet.network)(
    `${gateway.url}/v1/chat/completions`,
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: streamBody.replace('"stream":true', '"stream":false'),
    },
  );
  const text = await response.text();
  assert.equal(response.status, 200, text);
  const [row] = await ledger.payments.recent({ limit: 1 });
  const paidAtomic = before - (await devnet.usdcBalance(buyer.address));
  assert.ok(paidAtomic > 0n, "the transfer went through");
  assert.equal(
    row?.status,
    "settled",
    `the payer paid ${paidAtomic}; the row says ${row?.status} (${row?.error})`,
  );
  assert.equal(row?.chargeAtomic, paidAtomic);
  const settled = decodePaymentResponseHeader(response.headers.get("payment-response")!);
  assert.equal(settled.success, true, JSON.stringify(settled));
  assert.equal(
    await ledger.payments.hasOpenDebt(devnet.network, buyer.address),
    false,
    "the payer owes nothing",
  );
});

test("a channel reservation the database made though its answer was lost does not keep the channel busy", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dbreserve", true);
  const buyer = await devnet.createBuyer(10_000_000n);
  const pay = channelPayingFetch(buyer.privateKey);
  const url = `${gateway.url}/v1/chat/completions`;
  const jsonBody = streamBody.replace('"stream":true', '"stream":false');
  const post = () =>
    pay(url, { method: "POST", headers: { "content-type": "application/json" }, body: jsonBody });
  const opened = await post();
  assert.equal(opened.status, 200, await opened.text());
  // The next transaction is the voucher's reservation on the channel.
  proxy.loseNextAnswerTo("COMMIT");
  const lost = await post();
  const lostText = await lost.text();
  assert.equal(proxy.answersLost, 1, "the reservation's COMMIT answer was lost");
  assert.equal(lost.status, 503, lostText);
  const [channel] = (await ledger.channels.list()).filter(
    (candidate) => candidate.payer.toLowerCase() === buyer.address.toLowerCase(),
  );
  assert.equal(channel?.pending, undefined, "the reservation of the refused request is freed");
  const next = await post();
  assert.equal(next.status, 200, await next.text());
});

test("a settlement the facilitator could not begin because its log's write failed is tried again, not booked as a debt", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dbbegin");
  const buyer = await devnet.createBuyer(10_000_000n);
  const before = await devnet.usdcBalance(buyer.address);
  // The facilitator's record that a settlement starts, written before any transaction is sent.
  proxy.failNextStatement("INSERT INTO settlements");
  const response = await officialPayingFetch(buyer.privateKey, devnet.network)(
    `${gateway.url}/v1/chat/completions`,
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: streamBody.replace('"stream":true', '"stream":false'),
    },
  );
  const text = await response.text();
  assert.equal(response.status, 200, text);
  const [row] = await ledger.payments.recent({ limit: 1 });
  assert.equal(row?.status, "settled", `the row says ${row?.status} (${row?.error})`);
  assert.equal(await devnet.usdcBalance(buyer.address), before - row!.chargeAtomic!);
  const settled = decodePaymentResponseHeader(response.headers.get("payment-response")!);
  assert.equal(settled.success, true, JSON.stringify(settled));
});

test("once the ledger is back from an outage, recovery leaves serving rows to the requests finishing them for a grace period", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dbrecovery");
  const graceMs = 1_000;
  const recovery = createPaymentRecovery({
    payments: ledger.payments,
    facilitator: gateway.facilitator,
    network: devnet.network,
    graceMs,
    settlingGraceMs: graceMs,
  });
  const claimed = await ledger.payments.claim(claimInput({ network: devnet.network }), { serving: true });
  assert.ok(claimed.claimed);
  const id = claimed.payment.id;
  proxy.cut();
  await assert.rejects(recovery.runOnce());
  // Out for longer than the grace period: the row looks abandoned, as would one whose request is
  // recording its charge as soon as the ledger answers.
  await sleep(graceMs * 2);
  proxy.restore();
  const back = await recovery.runOnce();
  assert.equal(back.failed, 0);
  assert.equal((await ledger.payments.get(id))?.status, "serving");
  // Nothing refreshed it in the grace period since: it is abandoned.
  assert.ok(await waitFor(async () => (await recovery.runOnce()).failed === 1, 10_000));
  assert.equal((await ledger.payments.get(id))?.status, "failed");
});

test("a stream delivered while the database is out for longer than the settle timeout ends settlement_pending, and is charged once the database is back", {
  skip: needsPostgres,
}, async () => {
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dblong", false, (input) => ({
    ...input,
    timeouts: { verifySeconds: 15, settleSeconds: 1 },
  }));
  const buyer = await devnet.createBuyer(10_000_000n);
  const before = await devnet.usdcBalance(buyer.address);
  const release = holdStreams(backend, 3);
  const response = await officialPayingFetch(buyer.privateKey, devnet.network)(
    `${gateway.url}/v1/chat/completions`,
    { method: "POST", headers: { "content-type": "application/json" }, body: streamBody },
  );
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value, { stream: true });
  proxy.cut();
  release();
  // The whole answer, read while the database stays out.
  let broken: string | undefined;
  try {
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
      text += decoder.decode(next.value, { stream: true });
    }
  } catch (error) {
    broken = String(error);
  }
  assert.equal(broken, undefined, `the stream broke off after delivering: ${text.slice(-200)}`);
  const receiptLine = text.split("\n").find((line) => line.includes("x402_receipt"));
  assert.ok(receiptLine, "the stream ends with its receipt");
  const parsed = parseReceiptEvent(receiptLine);
  assert.ok(parsed.ok && parsed.receipt.errorReason === "settlement_pending", JSON.stringify(parsed));
  proxy.restore();
  assert.ok(
    await waitFor(async () => (await ledger.payments.recent({ limit: 1 }))[0]?.status === "settled", 20_000),
    "settled once the database is back",
  );
  const [row] = await ledger.payments.recent({ limit: 1 });
  assert.ok(row!.chargeAtomic! > 0n);
  assert.equal(await devnet.usdcBalance(buyer.address), before - row!.chargeAtomic!);
});

test("a charge the database kept from being settled until its authorization lapsed does not refuse its payer", {
  skip: needsPostgres,
}, async () => {
  // Each request runs at most 2 s and settles within 5 s: the buyer signs for 10 s.
  const { proxy, ledger, gateway } = await gatewayBehindProxy("dblapse", false, (input) => ({
    ...input,
    maxTimeoutSeconds: 10,
    settlementMarginSeconds: 5,
    timeouts: { verifySeconds: 15, settleSeconds: 1 },
    models: input.models.map((model) => ({
      ...model,
      backend: { ...model.backend, maxDurationSeconds: 2 },
    })),
  }));
  const buyer = await devnet.createBuyer(10_000_000n);
  const response = await officialPayingFetch(buyer.privateKey, devnet.network)(
    `${gateway.url}/v1/chat/completions`,
    { method: "POST", headers: { "content-type": "application/json" }, body: streamBody },
  );
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  await reader.read();
  proxy.cut();
  let text = "";
  for (;;) {
    const next = await reader.read();
    if (next.done) break;
    text += new TextDecoder().decode(next.value);
  }
  assert.match(text, /settlement_pending/);
  // The database stays out until the authorization has lapsed: the seller can no longer collect it.
  // Signed before now, for 10 s: lapsed (by this host's clock and the chain's) 12 s from now.
  const lapsedAt = Date.now() + 12_000;
  while (Date.now() < lapsedAt) await sleep(500);
  proxy.restore();
  assert.ok(
    await waitFor(async () => (await ledger.payments.recent({ limit: 1 }))[0]?.status === "debt", 30_000),
    "recorded as a debt once the database is back",
  );
  const [row] = await ledger.payments.recent({ limit: 1 });
  assert.equal(
    await ledger.payments.hasOpenDebt(row!.network, row!.payer),
    false,
    `its payer is refused for the seller's outage (${row!.error})`,
  );
});
