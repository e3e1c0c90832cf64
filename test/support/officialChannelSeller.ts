import { serve } from "@hono/node-server";
import type { FacilitatorClient } from "@x402/core/server";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/server";
import { UptoEvmScheme } from "@x402/evm/upto/server";
import { paymentMiddleware, setSettlementOverrides, x402ResourceServer } from "@x402/hono";
import { type Context, Hono } from "hono";
import type { LocalAccount } from "viem";
import { costAtomic } from "../../src/pricing/index.js";

export type OfficialChannelSellerParameters = {
  facilitator: FacilitatorClient;
  network: `eip155:${number}`;
  asset: `0x${string}`;
  payTo: `0x${string}`;
  /** Signs the seller's claims and refunds (the facilitator advertises no receiverAuthorizer). */
  receiverAuthorizer: LocalAccount;
  /** The per-request maximum of every request, in atomic units. */
  maxAtomic: bigint;
  prices: { inputPerMTokAtomic: bigint; outputPerMTokAtomic: bigint; fixedFeeAtomic: bigint };
  /** The usage every answer reports. */
  usage: { promptTokens: number; completionTokens: number };
  /** Which deposits the offer takes: ERC-3009 (the scheme's default) or Permit2. */
  assetTransferMethods?: Array<"eip3009" | "permit2">;
  /** Also offer upto beside the channel (the buyer then chooses). */
  uptoOffer?: boolean;
  /** Which offer quotes the prices in `extra.pricing`: the channel's (default) or only the upto one beside it. */
  pricedOn?: "channel" | "upto";
  /** Added to the honest charge (still capped at the maximum): a seller that overcharges. */
  overchargeAtomic?: bigint;
  /** How long the handler takes, so parallel requests overlap. */
  handlerDelayMs?: number;
  /** The deposit the offer asks for (`extra.minDeposit`); default 10 × the maximum, the scheme's own. */
  minDepositAtomic?: bigint;
};

/**
 * A seller of channel payments built only from official pieces: `@x402/hono`'s
 * `paymentMiddleware` over `@x402/core`'s resource server with `@x402/evm`'s server-side
 * `BatchSettlementEvmScheme`, in front of an OpenAI-style route that reports fixed usage. The
 * charge is set with `setSettlementOverrides` (the usage's cost, plus any overcharge). Its offer
 * quotes the prices in `extra.pricing`, as Tollgate's gateway does, so the buyer can check charges.
 */
export async function startOfficialChannelSeller(parameters: OfficialChannelSellerParameters) {
  const { network, asset, payTo, maxAtomic, prices, usage } = parameters;
  const scheme = new BatchSettlementEvmScheme(payTo, {
    receiverAuthorizerSigner: parameters.receiverAuthorizer,
    withdrawDelay: 900,
  });
  const resourceServer = new x402ResourceServer(parameters.facilitator).register(network, scheme);
  if (parameters.uptoOffer) resourceServer.register(network, new UptoEvmScheme());
  const honestChargeAtomic = costAtomic(usage, { ...prices, maxOutputTokens: 1 });
  const chargedAtomic = [honestChargeAtomic + (parameters.overchargeAtomic ?? 0n), maxAtomic].reduce(
    (a, b) => (a < b ? a : b),
  );
  const pricing = {
    inputPerMTokAtomic: prices.inputPerMTokAtomic.toString(),
    outputPerMTokAtomic: prices.outputPerMTokAtomic.toString(),
    fixedFeeAtomic: prices.fixedFeeAtomic.toString(),
  };
  const accepts = (parameters.assetTransferMethods ?? ["eip3009"]).map((assetTransferMethod) => ({
    scheme: "batch-settlement",
    network,
    payTo,
    price: {
      asset,
      amount: maxAtomic.toString(),
      extra: {
        name: "USD Coin",
        version: "2",
        assetTransferMethod,
        ...(parameters.pricedOn === "upto" ? {} : { pricing }),
        ...(parameters.minDepositAtomic !== undefined
          ? { minDeposit: parameters.minDepositAtomic.toString() }
          : {}),
      },
    },
    maxTimeoutSeconds: 300,
  }));
  if (parameters.uptoOffer) {
    accepts.push({
      scheme: "upto",
      network,
      payTo,
      price: {
        asset,
        amount: maxAtomic.toString(),
        extra: {
          name: "USD Coin",
          version: "2",
          ...(parameters.pricedOn === "upto" ? { pricing } : {}),
        } as never,
      },
      maxTimeoutSeconds: 300,
    });
  }
  const route = { accepts, description: "chat completion, billed by usage", mimeType: "application/json" };
  const app = new Hono();
  app.use(
    paymentMiddleware(
      { "POST /v1/chat/completions": route, "GET /v1/chat/completions": route },
      resourceServer,
    ),
  );
  const answer = async (c: Context) => {
    if (parameters.handlerDelayMs) await new Promise((done) => setTimeout(done, parameters.handlerDelayMs));
    setSettlementOverrides(c, { amount: chargedAtomic.toString() });
    return c.json({
      id: "chatcmpl-channel",
      object: "chat.completion",
      created: 0,
      model: "official-model",
      choices: [{ index: 0, message: { role: "assistant", content: "hello" }, finish_reason: "stop" }],
      usage: {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.promptTokens + usage.completionTokens,
      },
    });
  };
  app.post("/v1/chat/completions", answer);
  app.get("/v1/chat/completions", answer);
  const manager = scheme.createChannelManager(parameters.facilitator, network, asset);
  return new Promise<{
    url: string;
    honestChargeAtomic: bigint;
    chargedAtomic: bigint;
    scheme: BatchSettlementEvmScheme;
    /** Claims every outstanding voucher and settles the claimed funds to payTo. */
    claimAndSettle(): ReturnType<typeof manager.claimAndSettle>;
    close(): Promise<void>;
  }>((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => {
      resolve({
        url: `http://127.0.0.1:${info.port}`,
        honestChargeAtomic,
        chargedAtomic,
        scheme,
        claimAndSettle: () => manager.claimAndSettle(),
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
  });
}
