import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { PaymentPayload, PaymentRequired } from "@x402/core/types";
import { PERMIT2_ADDRESS, uptoPermit2WitnessTypes } from "@x402/evm";
import { type Address, createPublicClient, erc20Abi, type Hex, http, recoverTypedDataAddress } from "viem";
import { type Devnet, devAccount, startDevnet } from "../../src/devnet/index.js";
import { createFacilitator, serveFacilitator, settlementStoreFromLog } from "../../src/facilitator/index.js";
import {
  type Gateway,
  type GatewayConfigInput,
  parseGatewayConfig,
  startGateway,
} from "../../src/gateway/index.js";
import { type Ledger, openPostgresLedger } from "../../src/ledger/index.js";
import {
  authorizationKey,
  decodePaymentRequiredHeader,
  encodePaymentSignatureHeader,
} from "../../src/protocol/index.js";
import { TEST_FACILITATOR_TOKEN } from "../support/facilitatorToken.js";
import { officialBuyer, testGatewayConfig } from "../support/gatewayHarness.js";
import { type MockBackend, mockModelId, startMockBackend } from "../support/mockBackend.js";
import { databaseUrl, freshSchema, needsPostgres } from "./support/reliabilityEnv.js";

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** The other valid encoding of an ECDSA signature: s' = n − s and the recovery bit flipped (high-s). */
function malleate(signature: Hex): Hex {
  const r = signature.slice(2, 66);
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number.parseInt(signature.slice(130, 132), 16);
  const flipped = v === 27 ? 28 : v === 28 ? 27 : v ^ 1;
  return `0x${r}${(SECP256K1_N - s).toString(16).padStart(64, "0")}${flipped.toString(16).padStart(2, "0")}`;
}

function malleatedCopy(payload: PaymentPayload): PaymentPayload {
  const inner = payload.payload as { signature: Hex };
  return { ...payload, payload: { ...payload.payload, signature: malleate(inner.signature) } };
}

const body = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "replay me" }],
  max_tokens: 32,
});

describe("replay across two gateway replicas sharing PostgreSQL", { skip: needsPostgres }, () => {
  let devnet: Devnet;
  let backend: MockBackend;
  let dropSchema: () => Promise<void>;
  const ledgers: Ledger[] = [];
  const gateways: Gateway[] = [];
  const closers: Array<() => Promise<void>> = [];
  let schema: string;
  let startBlock: bigint;

  const configFor = (facilitator: GatewayConfigInput["facilitator"]) =>
    parseGatewayConfig(testGatewayConfig({ devnet, backendUrl: backend.url, facilitator }));

  const replica = async (facilitator: GatewayConfigInput["facilitator"]) => {
    const ledger = await openPostgresLedger({ connectionString: databaseUrl!, schema, maxConnections: 10 });
    ledgers.push(ledger);
    const gateway = await startGateway({ config: configFor(facilitator), ledger, pollingIntervalMs: 20 });
    gateways.push(gateway);
    return gateway;
  };

  before(async () => {
    devnet = await startDevnet({ buyers: 2 });
    backend = await startMockBackend({ responseTokens: 8 });
    ({ schema, drop: dropSchema } = await freshSchema("replay"));
    startBlock = await devnetBlock();
  });
  after(async () => {
    for (const gateway of gateways) await gateway.close();
    for (const close of closers) await close();
    for (const ledger of ledgers) await ledger.close();
    await dropSchema?.();
    await backend?.close();
    await devnet?.stop();
  });

  async function devnetBlock(): Promise<bigint> {
    const response = await fetch(devnet.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] }),
    });
    return BigInt(((await response.json()) as { result: string }).result);
  }

  async function paymentRequired(gateway: Gateway): Promise<PaymentRequired> {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
    assert.ok(decoded.ok);
    return decoded.paymentRequired;
  }

  /** Fires every (replica, header) pair at once; returns the status histogram. */
  async function fire(targets: Array<{ gateway: Gateway; header: string }>): Promise<Record<number, number>> {
    const responses = await Promise.all(
      targets.map(async ({ gateway, header }) => {
        const response = await fetch(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", "payment-signature": header },
          body,
        });
        await response.arrayBuffer();
        return response.status;
      }),
    );
    const histogram: Record<number, number> = {};
    for (const status of responses) histogram[status] = (histogram[status] ?? 0) + 1;
    return histogram;
  }

  async function transfersFrom(payer: Address): Promise<number> {
    const client = createPublicClient({ transport: http(devnet.rpcUrl) });
    const found = await client.getLogs({
      address: devnet.contracts.usdc,
      event: erc20Abi.find((item) => item.type === "event" && item.name === "Transfer") as Extract<
        (typeof erc20Abi)[number],
        { type: "event"; name: "Transfer" }
      >,
      args: { from: payer, to: devnet.accounts.payTo.address },
      fromBlock: startBlock,
    });
    return found.length;
  }

  test("100 identical paid requests over 2 replicas, each with its own facilitator key: 1 inference, 1 settlement", async (t) => {
    const a = await replica({ privateKey: devnet.accounts.facilitator.privateKey });
    const b = await replica({ privateKey: devAccount(8).privateKey });
    const buyer = devnet.accounts.buyers[0]!;
    const payload = await officialBuyer(buyer.privateKey, devnet.network).createPaymentPayload(
      await paymentRequired(a),
    );
    const header = encodePaymentSignatureHeader(payload);
    backend.clearRequests();
    const statuses = await fire(
      Array.from({ length: 100 }, (_, i) => ({ gateway: i % 2 === 0 ? a : b, header })),
    );
    const rows = await a.ledger.payments.listByStatus("settled");
    const key = authorizationKey(payload as Parameters<typeof authorizationKey>[0]);
    const mine = rows.filter((row) => row.payer === key.payer && row.nonce === key.nonce);
    const transfers = await transfersFrom(buyer.address);
    t.diagnostic(
      `replay (own keys): 100 requests → statuses ${JSON.stringify(statuses)}; backend calls ${backend.inferenceRequests.length}; settled rows ${mine.length}; on-chain transfers ${transfers}`,
    );
    assert.equal(statuses[200], 1);
    assert.equal(backend.inferenceRequests.length, 1);
    assert.equal(mine.length, 1);
    assert.equal(transfers, 1);

    // The same authorization with its high-s twin signature: one key (payer, nonce), so refused on both replicas.
    const twin = malleatedCopy(payload);
    const twinHeader = encodePaymentSignatureHeader(twin);
    const twinStatuses = await fire([
      { gateway: a, header: twinHeader },
      { gateway: b, header: twinHeader },
    ]);
    t.diagnostic(
      `replay (high-s twin of a used authorization): statuses ${JSON.stringify(twinStatuses)}; extra backend calls ${backend.inferenceRequests.length - 1}`,
    );
    assert.equal(twinStatuses[200] ?? 0, 0);
    assert.equal(backend.inferenceRequests.length, 1);
    assert.equal(await transfersFrom(buyer.address), 1);
  });

  test("100 requests mixing a fresh authorization and its high-s twin, over 2 replicas sharing one facilitator: 1 inference", async (t) => {
    // One remote facilitator (one key, one nonce manager), its settlement log on the same PostgreSQL.
    const facilitatorLedger = await openPostgresLedger({ connectionString: databaseUrl!, schema });
    ledgers.push(facilitatorLedger);
    const shared = await serveFacilitator({
      facilitator: createFacilitator({
        rpcUrl: devnet.rpcUrl,
        privateKey: devAccount(7).privateKey,
        network: devnet.network,
        pollingIntervalMs: 20,
        settlementStore: settlementStoreFromLog(facilitatorLedger.settlements),
      }),
      token: TEST_FACILITATOR_TOKEN,
      port: 0,
    });
    closers.push(() => shared.close());
    const c = await replica({ url: shared.url, token: TEST_FACILITATOR_TOKEN });
    const d = await replica({ url: shared.url, token: TEST_FACILITATOR_TOKEN });
    const buyer = devnet.accounts.buyers[1]!;
    const required = await paymentRequired(c);
    const payload = await officialBuyer(buyer.privateKey, devnet.network).createPaymentPayload(required);
    const twin = malleatedCopy(payload);

    // The twin is a valid signature of the same message: only keying by nonce stops it.
    const permit = (payload.payload as { permit2Authorization: Record<string, unknown> })
      .permit2Authorization as {
      permitted: { token: Address; amount: string };
      spender: Address;
      nonce: string;
      deadline: string;
      witness: { to: Address; facilitator: Address; validAfter: string };
    };
    const recovered = await recoverTypedDataAddress({
      domain: { name: "Permit2", chainId: devnet.chainId, verifyingContract: PERMIT2_ADDRESS },
      types: uptoPermit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message: {
        permitted: { token: permit.permitted.token, amount: BigInt(permit.permitted.amount) },
        spender: permit.spender,
        nonce: BigInt(permit.nonce),
        deadline: BigInt(permit.deadline),
        witness: { ...permit.witness, validAfter: BigInt(permit.witness.validAfter) },
      },
      signature: (twin.payload as { signature: Hex }).signature,
    }).catch(() => undefined);

    const headers = [encodePaymentSignatureHeader(payload), encodePaymentSignatureHeader(twin)];
    backend.clearRequests();
    const statuses = await fire(
      Array.from({ length: 100 }, (_, i) => ({
        gateway: i % 2 === 0 ? c : d,
        header: headers[(i >> 1) % 2]!,
      })),
    );
    const transfers = await transfersFrom(buyer.address);
    t.diagnostic(
      `replay (shared facilitator, original + high-s twin): 100 requests → statuses ${JSON.stringify(statuses)}; backend calls ${backend.inferenceRequests.length}; on-chain transfers ${transfers}; twin recovers to the payer: ${recovered?.toLowerCase() === buyer.address.toLowerCase()}`,
    );
    assert.equal(statuses[200], 1);
    assert.equal(backend.inferenceRequests.length, 1);
    assert.equal(transfers, 1);
  });
});
