import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { PaymentRequirements } from "@x402/core/types";
import type { TollgateFacilitator } from "../../src/facilitator/index.js";
import { createReceiptSigner } from "../../src/gateway/index.js";
import { costAtomic, maxAtomicForRequest, promptTokenBound } from "../../src/pricing/index.js";
import {
  authorizationKey,
  decodePaymentSignatureHeader,
  encodePaymentRequiredHeader,
  encodePaymentResponseHeader,
  readPaymentHeader,
} from "../../src/protocol/index.js";

export type DishonestSellerParameters = {
  facilitator: TollgateFacilitator;
  asset: `0x${string}`;
  payTo: `0x${string}`;
  prices: { inputPerMTokAtomic: bigint; outputPerMTokAtomic: bigint; fixedFeeAtomic: bigint };
  /** The usage every answer reports. */
  usage: { promptTokens: number; completionTokens: number };
  /** Asks for this many times the honest maximum. Default 1. */
  inflateMaximum?: bigint;
  /** Settles this much above what the reported usage costs. Default 0. */
  overchargeAtomic?: bigint;
  /** Signs receipts (x402 and usage) stating what it charged, and publishes the key in `/v1/models`. */
  receiptKey?: `0x${string}`;
};

/**
 * A tiny x402 seller that quotes its prices in a 402 (`extra.pricing`, like Tollgate) and then
 * cheats as told: it asks for an inflated maximum, or it settles through the real facilitator
 * more than its own reported usage costs. Honest otherwise.
 */
export async function startDishonestSeller(parameters: DishonestSellerParameters) {
  const { facilitator, asset, payTo, prices, usage } = parameters;
  const inflate = parameters.inflateMaximum ?? 1n;
  const overcharge = parameters.overchargeAtomic ?? 0n;
  const settled: Array<{ chargeAtomic: bigint; transaction: string }> = [];
  const receiptSigner = parameters.receiptKey
    ? createReceiptSigner({ privateKey: parameters.receiptKey })
    : undefined;

  async function handle(request: IncomingMessage, response: ServerResponse) {
    if (request.method === "GET" && request.url === "/v1/models") {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ object: "list", data: [modelListing()] }));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
    const outputTokens = typeof body.max_tokens === "number" ? body.max_tokens : 256;
    const bound = await promptTokenBound({ kind: "chat", body });
    const honestMax = maxAtomicForRequest(
      { promptTokenBound: bound, maxOutputTokens: outputTokens },
      { ...prices, maxOutputTokens: outputTokens },
    );
    const offer: PaymentRequirements = {
      scheme: "upto",
      network: facilitator.network,
      asset,
      payTo,
      amount: (honestMax * inflate).toString(),
      maxTimeoutSeconds: 120,
      extra: {
        facilitatorAddress: facilitator.address,
        pricing: {
          model: String(body.model),
          inputPerMTokAtomic: prices.inputPerMTokAtomic.toString(),
          outputPerMTokAtomic: prices.outputPerMTokAtomic.toString(),
          fixedFeeAtomic: prices.fixedFeeAtomic.toString(),
          maxOutputTokens: outputTokens,
          promptTokenBound: bound,
        },
      },
    };
    const decoded = decodePaymentSignatureHeader(
      readPaymentHeader({ get: (name) => request.headers[name.toLowerCase()] as string }),
    );
    if (!decoded.ok) {
      response.writeHead(402, {
        "content-type": "application/json",
        "payment-required": encodePaymentRequiredHeader({
          x402Version: 2,
          error: "payment required",
          resource: { url: `http://${request.headers.host}${request.url}`, mimeType: "application/json" },
          accepts: [offer],
        }),
      });
      response.end("{}");
      return;
    }
    const payload = decoded.payload;
    const signedMax = BigInt(payload.accepted.amount);
    const requirements = { ...offer, amount: signedMax.toString() };
    const verified = await facilitator.verify(payload, requirements);
    if (!verified.isValid) {
      response.writeHead(402, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: verified.invalidReason }));
      return;
    }
    const honest = costAtomic(usage, { ...prices, maxOutputTokens: 1 });
    const charge = honest + overcharge > signedMax ? signedMax : honest + overcharge;
    const settlement = await facilitator.settle(payload, { ...requirements, amount: charge.toString() });
    settled.push({ chargeAtomic: charge, transaction: settlement.transaction });
    const extensions = await receiptSigner?.sign({
      network: facilitator.network,
      resourceUrl: `http://${request.headers.host}${request.url}`,
      route: String(request.url),
      model: String(body.model),
      scheme: "upto",
      asset,
      payer: settlement.payer as `0x${string}`,
      payTo,
      nonce: authorizationKey(payload).nonce,
      usage: [
        { unit: "input_tokens", amount: String(usage.promptTokens) },
        { unit: "output_tokens", amount: String(usage.completionTokens) },
      ],
      prices: [
        { unit: "input_tokens", perMillionAtomic: prices.inputPerMTokAtomic.toString() },
        { unit: "output_tokens", perMillionAtomic: prices.outputPerMTokAtomic.toString() },
      ],
      fixedFeeAtomic: prices.fixedFeeAtomic.toString(),
      chargeAtomic: charge.toString(),
      maxAtomic: signedMax.toString(),
      transaction: settlement.transaction,
    });
    response.writeHead(200, {
      "content-type": "application/json",
      "payment-response": encodePaymentResponseHeader({
        ...settlement,
        amount: charge.toString(),
        ...(extensions ? { extensions } : {}),
      }),
    });
    response.end(
      JSON.stringify({
        id: "chatcmpl-dishonest",
        object: "chat.completion",
        created: 0,
        model: body.model,
        choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
        usage: { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens },
      }),
    );
  }

  function modelListing() {
    return {
      id: "any-model",
      object: "model",
      pricing: {
        network: facilitator.network,
        asset,
        payTo,
        schemes: ["upto"],
        inputPerMTokAtomic: prices.inputPerMTokAtomic.toString(),
        outputPerMTokAtomic: prices.outputPerMTokAtomic.toString(),
        fixedFeeAtomic: prices.fixedFeeAtomic.toString(),
        receiptSigner: receiptSigner?.address,
      },
    };
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error) => {
      response.writeHead(500);
      response.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    settled,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
