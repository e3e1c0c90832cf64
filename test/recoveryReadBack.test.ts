// Recovery reads upto settlements back from the chain. On a busy gateway (settlements booked faster than
// the RPC answers one receipt after another) and at SIGTERM, that reading must not hold the pass: debts and
// stranded rows wait behind it, and a stopping gateway waits for it.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { createPublicClient, createWalletClient, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { createPaymentRecovery } from "../src/gateway/index.js";
import type { PaymentLedger } from "../src/ledger/index.js";
import { claimInput } from "../src/ledger/testkit/ledgerHarness.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";

let h: GatewayHarness;
let held: Hex;

/** A JSON-RPC relay to the devnet that runs `onReceipt` before it forwards each receipt read. */
async function relay(
  target: string,
  onReceipt: () => Promise<void>,
): Promise<{ url: string; server: Server }> {
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    if ((JSON.parse(body) as { method?: string }).method === "eth_getTransactionReceipt") await onReceipt();
    const upstream = await fetch(target, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    response.writeHead(upstream.status, { "content-type": "application/json" });
    response.end(await upstream.text());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Books one settled upto row whose settlement is `held` (a real, mined transaction). */
async function bookSettled(payments: PaymentLedger): Promise<void> {
  const { payment } = (await payments.claim(claimInput({ network: h.devnet.network }))) as {
    payment: { id: number };
  };
  await payments.markServing(payment.id);
  await payments.recordUsage(payment.id, { promptTokens: 1, completionTokens: 1 }, 10n);
  await payments.markSettling(payment.id);
  await payments.markSettled(payment.id, { transaction: held, chargeAtomic: 10n });
}

const recoveryOn = (url: string) =>
  createPaymentRecovery({
    payments: h.ledger.payments,
    settlements: h.ledger.settlements,
    facilitator: h.gateway.facilitator,
    chain: createPublicClient({ chain: { ...anvil, id: h.devnet.chainId }, transport: http(url) }),
    network: h.devnet.network,
    graceMs: 60_000,
    settlingGraceMs: 120_000,
    confirmAfterMs: 0,
  });

before(async () => {
  h = await startGatewayHarness();
  const wallet = createWalletClient({
    account: privateKeyToAccount(h.devnet.accounts.deployer.privateKey),
    chain: { ...anvil, id: h.devnet.chainId },
    transport: http(h.devnet.rpcUrl),
  });
  held = await wallet.sendTransaction({ to: h.devnet.accounts.deployer.address, value: 0n });
  await createPublicClient({ transport: http(h.devnet.rpcUrl) }).waitForTransactionReceipt({ hash: held });
});

after(async () => {
  await h?.close();
});

test("a recovery pass reads back a bounded number of settlements, however fast new ones are booked", async () => {
  for (let i = 0; i < 200; i++) await bookSettled(h.ledger.payments);
  // A busy gateway: one more settlement is booked for every receipt the pass reads.
  let booked = 0;
  const rpc = await relay(h.devnet.rpcUrl, async () => {
    if (booked < 1_200) {
      booked++;
      await bookSettled(h.ledger.payments);
    }
  });
  try {
    const pass = await recoveryOn(rpc.url).runOnce();
    assert.ok(
      pass.confirmed <= 1_000,
      `one pass read ${pass.confirmed} settlements back (${booked} booked meanwhile): it would go on as long as they come`,
    );
    assert.ok(pass.confirmed >= 200, JSON.stringify(pass));
    // The next pass goes on where it stopped.
    const next = await recoveryOn(rpc.url).runOnce();
    assert.ok(next.confirmed > 0, JSON.stringify(next));
  } finally {
    rpc.server.closeAllConnections();
    rpc.server.close();
  }
});

test("a stopping recovery stops reading settlements back: stop() does not wait for every receipt", async () => {
  for (let i = 0; i < 50; i++) await bookSettled(h.ledger.payments);
  let reads = 0;
  let release!: () => void;
  const stopped = new Promise<void>((resolve) => {
    release = resolve;
  });
  let firstRead!: () => void;
  const reading = new Promise<void>((resolve) => {
    firstRead = resolve;
  });
  const rpc = await relay(h.devnet.rpcUrl, async () => {
    reads++;
    firstRead();
    // The first receipt read is answered only once the gateway is stopping.
    await stopped;
  });
  try {
    const recovery = recoveryOn(rpc.url);
    const pass = recovery.runOnce();
    await reading;
    const stopping = recovery.stop();
    release();
    await stopping;
    await pass;
    assert.ok(reads <= 2, `${reads} receipts were read after the recovery was told to stop`);
  } finally {
    rpc.server.closeAllConnections();
    rpc.server.close();
  }
});
