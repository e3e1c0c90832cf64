// A fresh wallet (a token without EIP-2612, no gas) pays with a signed `approve` the seller's facilitator
// relays, funding its gas. A hostile payer spends that gas on the approve's nonce first (it sees the
// funding land). The approve is relayed before the request is served, so the payer is refused: it keeps
// at most the gas, never the inference, and the seller is owed nothing it cannot collect.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { createPublicClient, type Hex, http, parseTransaction } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

let devnet: Devnet;
let h: GatewayHarness;
let relay: Server;
/** Called with each raw transaction the gateway's facilitator broadcasts, before it reaches the chain. */
let onBroadcast: ((raw: Hex) => Promise<void>) | undefined;

before(async () => {
  devnet = await startDevnet({ buyers: 1 });
  // A JSON-RPC relay between the gateway and the chain, through which the test watches broadcasts.
  relay = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const parsed = JSON.parse(body) as
      | { method?: string; params?: unknown[] }
      | Array<{ method?: string; params?: unknown[] }>;
    for (const call of Array.isArray(parsed) ? parsed : [parsed])
      if (call.method === "eth_sendRawTransaction" && onBroadcast) await onBroadcast(call.params?.[0] as Hex);
    const upstream = await fetch(devnet.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    response.writeHead(upstream.status, { "content-type": "application/json" });
    response.end(await upstream.text());
  });
  await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
  h = await startGatewayHarness({
    devnet,
    rpcUrl: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    configure: (input) => ({
      ...input,
      asset: devnet.contracts.plainToken,
      assetDomain: { name: "Plain Test Dollar", version: "1" },
      facilitator: {
        ...(input.facilitator as object),
        gasSponsoring: { enabled: true, perPayerLimit: 3, erc20Approval: true },
      },
    }),
  });
});
after(async () => {
  await h?.close();
  relay?.close();
  await devnet?.stop();
});

test("a payer that spends the gas funded for its approve on the approve's nonce is refused before inference: it is not served, and nothing is owed", async () => {
  const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
  const buyer = await devnet.createFreshPlainTokenBuyer(10_000_000n);
  const account = privateKeyToAccount(buyer.privateKey);
  let frontRan: Hex | undefined;
  onBroadcast = async (raw) => {
    const approve = parseTransaction(raw);
    if (approve.to?.toLowerCase() !== devnet.contracts.plainToken.toLowerCase()) return;
    onBroadcast = undefined;
    // The payer's own transaction on the approve's nonce, sending the funded gas away, mined first.
    const fee = approve.maxFeePerGas ?? 0n;
    const balance = await chain.getBalance({ address: buyer.address });
    const own = await account.signTransaction({
      type: "eip1559",
      chainId: approve.chainId ?? 31337,
      nonce: approve.nonce ?? 0,
      to: devnet.accounts.payTo.address,
      value: balance - 21_000n * fee,
      gas: 21_000n,
      maxFeePerGas: fee,
      maxPriorityFeePerGas: approve.maxPriorityFeePerGas ?? 0n,
    });
    frontRan = await chain.sendRawTransaction({ serializedTransaction: own });
    await chain.waitForTransactionReceipt({ hash: frontRan });
  };
  const facilitator = devnet.accounts.facilitator.address;
  const facilitatorNonce = await chain.getTransactionCount({ address: facilitator });
  const servedBefore = h.backend.inferenceRequests.length;
  const client = new x402Client()
    .register(devnet.network, new UptoEvmScheme(account, { rpcUrl: devnet.rpcUrl }))
    .setSpendControls(false);
  const response = await wrapFetchWithPayment(fetch, client)(`${h.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: mockModelId,
      messages: [{ role: "user", content: "Say something" }],
      max_tokens: 20,
    }),
  });
  const text = await response.text();
  assert.ok(frontRan, "the payer front-ran its approve");
  assert.equal(response.status, 402, text);
  const refusal = decodePaymentRequiredHeader(response.headers.get("payment-required") ?? "");
  assert.match(refusal.error ?? "", /^tollgate_gas_sponsoring_refused: the sponsored approval is refused/);
  assert.equal(h.backend.inferenceRequests.length, servedBefore, "no inference ran");
  const rows = await h.ledger.payments.recent();
  assert.deepEqual(
    rows.map((row) => [row.status, row.chargeAtomic ?? 0n]),
    [["failed", 0n]],
    "the payment's row failed, nothing charged and no debt",
  );
  assert.equal(await devnet.plainTokenBalance(buyer.address), 10_000_000n, "the payer paid nothing");
  assert.equal(
    (await chain.getTransactionCount({ address: facilitator })) - facilitatorNonce,
    1,
    "the facilitator sent the gas funding alone: no settlement",
  );
});
