import { toClientEvmSigner } from "@x402/evm";
import { type Address, createPublicClient, erc20Abi, http } from "viem";
import { PAYMENT_SIGNATURE_HEADER, type PaymentRequired } from "../protocol/index.js";
import { authorizePayment } from "./authorizePayment.js";
import { createChannelPool } from "./channelPool.js";
import { callAbovePerCall } from "./checkOffer.js";
import { type BuyerPaymentOptions, createPaymentContext } from "./createPaymentContext.js";
import { connectionReset, neverConnected } from "./describeFetchFailure.js";
import { readInferenceRequest } from "./inferenceRequest.js";
import { offerOffListing } from "./offerOffListing.js";
import { type ChannelPaymentContext, payByChannel } from "./payByChannel.js";
import {
  declaredSponsoring,
  permit2AllowanceError,
  permit2Refusal,
  readPermit2Allowance,
  settlesViaPermit2,
} from "./permit2Approval.js";
import { type PolicyRefusal, policyRefusedError, TIMEOUT_RULES } from "./policyRefusal.js";
import { fetchProviderModels, type ProviderModel } from "./providerModels.js";
import { createQuoteBook } from "./quoteBook.js";
import { estimateRequest } from "./quotedPrice.js";
import { readPaymentRequired } from "./readPaymentRequired.js";
import type { SpendStore } from "./SpendStore.js";
import { selectOffer } from "./selectOffer.js";
import { settlePaidResponse } from "./settlePaidResponse.js";
import { spendChannelStorage } from "./spendChannelStorage.js";
import { providerOrigin } from "./spendingPolicy.js";
import { timeFirstByte } from "./timeFirstByte.js";

export type CreatePayingFetchParameters = BuyerPaymentOptions & {
  /**
   * An RPC endpoint of the chain paid on: lets the upto/exact schemes sign gas-sponsoring
   * extensions, and lets the buyer free reservations whose authorization expired unused.
   */
  rpcUrl?: string | undefined;
  /** The `fetch` underneath. Default: the global one. */
  fetch?: typeof fetch | undefined;
  /**
   * How many channels (batch-settlement) the buyer may open to one seller, so that as many
   * requests run at once (one request at a time per channel). Default 4.
   */
  channelPoolSize?: number | undefined;
};

/** A `fetch` that pays x402 402s within a spending policy, with a few handles of its own. */
export type PayingFetch = typeof fetch & {
  /** The paying address. */
  readonly address: string;
  /** The spend store (opened on first use). */
  spendStore(): Promise<SpendStore>;
  /** Lists a gateway's models and remembers their prices, so its first request is paid at once. */
  discover(gatewayUrl: string): Promise<ProviderModel[]>;
  /** Remembers prices from a model listing already fetched. */
  learnPrices(models: readonly ProviderModel[]): void;
  /**
   * The payment a response this fetch returned was paid with: the `paymentId` its events carry
   * (`receipt` among them); undefined for a response no payment was sent with.
   */
  paymentIdOf(response: Response): string | undefined;
  /** Resolves when every receipt seen so far has been booked (and, with `rpcUrl`, checked on chain). */
  idle(): Promise<void>;
  /** Waits for `idle()`, then closes the spend store if this fetch opened it. */
  close(): Promise<void>;
};

/**
 * A `fetch` that answers x402 v2 `402 Payment Required` for `upto` and `exact` on EVM networks,
 * built on `@x402/core`'s client and `@x402/evm`'s schemes. Before anything is signed it checks
 * the spending policy and reserves the maximum against the daily caps (persisted, atomic); it
 * reconciles to the settled amount from `PAYMENT-RESPONSE` or the stream's receipt event,
 * recomputes the charge from the usage, and flags overcharges. Known prices (an earlier 402,
 * `discover`) let it pay on the first request. Works as the `fetch` of the `openai` client,
 * streaming included.
 * @example
 * const payingFetch = createPayingFetch({ privateKey, policy: { perCall: "$0.05", daily: "$5" } });
 * const openai = new OpenAI({ apiKey: "x402", baseURL: "https://gateway.example/v1", fetch: payingFetch });
 */
export function createPayingFetch(parameters: CreatePayingFetchParameters): PayingFetch {
  const baseFetch = parameters.fetch ?? globalThis.fetch;
  const {
    signer,
    context,
    closeStore,
    idle: checksIdle,
    freeLapsed,
  } = createPaymentContext({
    ...parameters,
    caller: "createPayingFetch",
    fetch: baseFetch,
  });
  const { policy, store, emit, receiptSigners } = context;
  const quotes = createQuoteBook();

  const background = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>) => {
    const settled = work.catch(() => undefined).finally(() => background.delete(settled));
    background.add(settled);
  };
  const rpcUrl = parameters.rpcUrl;
  const payer = signer.address;
  const publicClient = rpcUrl
    ? createPublicClient({ transport: http(rpcUrl, { timeout: 10_000, retryCount: 1 }) })
    : undefined;
  const channelContext: ChannelPaymentContext = {
    ...context,
    pool: createChannelPool({
      // With an RPC the channel client can recover a channel from the chain (a lost record).
      signer: publicClient ? toClientEvmSigner(signer, publicClient) : signer,
      storage: spendChannelStorage(store),
      size: parameters.channelPoolSize ?? 4,
      // Other processes may share the spend store (PostgreSQL): a slot is taken by lease.
      leases: { store, payer: signer.address },
    }),
    readBalance: publicClient
      ? (token: Address) =>
          publicClient.readContract({
            address: token,
            abi: erc20Abi,
            functionName: "balanceOf",
            args: [payer],
          })
      : undefined,
  };
  /** Origins whose 402s offered channels: with channels preferred, they are not paid upto unasked. */
  const channelSellers = new Set<string>();
  /** Each paid response returned, with the payment it was sent with. */
  const paymentIds = new WeakMap<Response, string>();

  async function payingFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const request = new Request(input, init);
    const bodyBytes = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    const bodyText = bodyBytes ? new TextDecoder().decode(bodyBytes) : undefined;
    const url = request.url;
    const origin = providerOrigin(url);
    const inference = readInferenceRequest(url, bodyText);

    // Where a payment goes: the URL asked for, or where its 402 came from after a redirect within the
    // same origin. A paid request is never redirected: its authorization reaches only the seller the
    // policy judged (a redirect answer is returned as it is, and its maximum stays reserved).
    let paidUrl = url;
    const sendOnce = (paymentHeader?: string) => {
      const headers = new Headers(request.headers);
      if (paymentHeader) headers.set(PAYMENT_SIGNATURE_HEADER, paymentHeader);
      return baseFetch(paymentHeader ? paidUrl : url, {
        method: request.method,
        headers,
        body: bodyBytes,
        signal: init?.signal ?? (input instanceof Request ? input.signal : undefined),
        redirect: paymentHeader ? "manual" : request.redirect,
      });
    };
    // A reset before any response is almost always a kept-alive connection the seller had just
    // closed; the request is sent once more. That is safe for the payment too: the same
    // authorization settles at most once, and a seller that saw it refuses the replay.
    // `onReset` hears of the reset: that attempt had connected, so the seller may have the request.
    const send = (paymentHeader?: string, onReset?: () => void) =>
      sendOnce(paymentHeader).catch((error: unknown) => {
        if (!connectionReset(error)) throw error;
        onReset?.();
        return sendOnce(paymentHeader);
      });

    const sendPaid = async (attempt: Awaited<ReturnType<typeof authorizePayment>>) => {
      const sentAt = performance.now();
      let response: Response;
      let connected = false;
      try {
        response = await send(attempt.header, () => {
          connected = true;
        });
      } catch (error) {
        const spend = await store();
        // Released only when no attempt can have delivered the authorization.
        if (!connected && neverConnected(error)) {
          await spend.release(attempt.paymentId, `not delivered: ${(error as Error).message}`);
          emit({ type: "released", paymentId: attempt.paymentId, origin, reason: "not delivered" });
        } else {
          const reason = `network error after sending: ${(error as Error).message}`;
          await spend.note(attempt.paymentId, reason);
          emit({ type: "unreceipted", paymentId: attempt.paymentId, origin, reason });
        }
        throw error;
      }
      const settled = await settlePaidResponse(context, attempt, response, track);
      const model = inference?.model;
      // The router weighs providers by this: from sending the paid request to the answer's first byte.
      const paid =
        !settled.ok || model === undefined
          ? settled
          : timeFirstByte(settled, {
              sentAt,
              onFirstByte: (ttftMs) => {
                track(store().then((spend) => spend.recordTimeToFirstToken({ origin, model, ttftMs })));
              },
            });
      paymentIds.set(paid, attempt.paymentId);
      return paid;
    };

    // Open the store before talking to the seller: opening may take a moment, and a 402's
    // kept-alive connection should not sit idle meanwhile.
    await store();
    await freeLapsed();

    // Pay on the first request when this route's prices are known.
    let response: Response | undefined;
    /** What this request already authorized: a payment made at once that the seller answered with a 402. */
    let authorizedAtomic = 0n;
    // A seller known to offer channels (a 402 said so, or a channel opened before, perhaps by an
    // earlier process) is asked for its 402 rather than paid upto from known prices.
    if (policy.channels === "prefer" && !channelSellers.has(origin)) {
      const opened = await (await store()).channels({ origin, payer });
      if (opened.length > 0) channelSellers.add(origin);
    }
    const preferChannel = policy.channels === "prefer" && channelSellers.has(origin);
    const known = inference && !preferChannel ? quotes.lookup(url, inference) : undefined;
    const estimate = known && inference ? await estimateRequest(inference, known.price) : undefined;
    if (known && estimate) {
      const offer = { ...known.requirements, amount: estimate.expectedMaxAtomic.toString() };
      const paymentRequired: PaymentRequired = {
        x402Version: 2,
        resource: { ...known.resource, url },
        accepts: [offer],
      };
      const selected = await selectOffer({ accepts: [offer], request: inference, policy, origin });
      // The listing does not say how long the seller's authorizations live (300 s is assumed): a policy
      // that allows less asks the seller for its 402, whose own terms it judges.
      if (!selected.ok && !TIMEOUT_RULES.has(selected.refusal.rule)) {
        emit({ type: "refused", url, origin, refusal: selected.refusal });
        throw policyRefusedError(selected.refusal);
      }
      if (selected.ok) {
        const attempt = await authorizePayment(context, {
          url,
          origin,
          paymentRequired,
          choice: selected.choice,
          request: inference,
          firstRequest: true,
        });
        response = await sendPaid(attempt);
        // A 402 anyway (prices changed, a larger maximum): fall through to the usual flow. The seller
        // holds the first authorization, which stays reserved beside the next one and counts against
        // this request's perCall caps with it.
        if (response.status !== 402) return response;
        authorizedAtomic = attempt.maxAtomic;
      }
    }

    response ??= await send();
    if (response.status !== 402) return response;
    const asked = await readPaymentRequired(response, url, origin);
    paidUrl = asked.paidUrl;
    const { paymentRequired } = asked;
    const channelOffered = paymentRequired.accepts.some((offer) => offer.scheme === "batch-settlement");
    if (channelOffered) channelSellers.add(origin);
    const selected = await selectOffer({
      accepts: paymentRequired.accepts,
      request: inference,
      policy,
      origin,
      channelsFirst: channelOffered && (await channelsFirst(paymentRequired)),
    });
    if (!selected.ok) {
      emit({ type: "refused", url, origin, refusal: selected.refusal });
      throw policyRefusedError(selected.refusal);
    }
    // A seller chosen, or paid at once, by its model listing is held to it. Listing its models again takes its new terms.
    const raised = await offerOffListing(quotes, url, inference, selected.choice);
    if (raised !== undefined) {
      const refusal: PolicyRefusal = {
        rule: "listedPrices",
        message: `${origin} does not hold to what its /v1/models listing said for ${inference?.model} (${raised}): refused; list its models again (discover) to pay its current terms`,
        origin,
      };
      emit({ type: "refused", url, origin, refusal });
      throw policyRefusedError(refusal);
    }
    if (inference) quotes.learnFromOffer(url, inference, selected.choice.offer, paymentRequired.resource);
    // A seller that settles the authorization it answered with a 402 takes both: together they stay
    // within perCall, the most one request may authorize.
    const beyondPerCall =
      authorizedAtomic > 0n
        ? callAbovePerCall({ policy, origin, authorizedAtomic, askedAtomic: selected.choice.askedAtomic })
        : undefined;
    if (beyondPerCall) {
      emit({ type: "refused", url, origin, refusal: beyondPerCall });
      throw policyRefusedError(beyondPerCall);
    }
    const { offer } = selected.choice;
    if (offer.scheme === "batch-settlement") {
      return payByChannel(channelContext, {
        url,
        origin,
        paymentRequired,
        choice: selected.choice,
        request: inference,
        send: sendPaid,
        authorizedAtomic,
      });
    }
    const sponsored = declaredSponsoring(paymentRequired.extensions);
    // A wallet Permit2 may not spend, at a seller that does not sponsor the approval, cannot pay:
    // say so before anything is signed.
    if (rpcUrl && settlesViaPermit2(offer) && sponsored.length === 0) {
      const allowance = await readPermit2Allowance(rpcUrl, offer.asset as `0x${string}`, payer).catch(
        () => undefined,
      );
      if (allowance !== undefined && allowance < BigInt(offer.amount))
        throw permit2AllowanceError({ origin, offer, payer, sponsored, canSponsor: true });
    }
    const attempt = await authorizePayment(context, {
      url,
      origin,
      paymentRequired,
      choice: selected.choice,
      request: inference,
      firstRequest: false,
      authorizedAtomic,
    });
    const paid = await sendPaid(attempt);
    if (paid.status === 402 && settlesViaPermit2(offer)) {
      const reason = permit2Refusal(paid);
      if (reason !== undefined) {
        await paid.body?.cancel().catch(() => undefined);
        throw permit2AllowanceError({
          origin,
          offer,
          payer,
          sponsored,
          canSponsor: !!rpcUrl,
          sellerReason: reason,
        });
      }
    }
    return paid;
  }

  /**
   * Whether channels rank before upto and exact: always with `channels: prefer`; with `fallback`
   * only for a wallet whose Permit2 allowance covers none of the Permit2 offers (a fresh wallet:
   * an ERC-3009 deposit then needs no approval and no gas).
   */
  async function channelsFirst(paymentRequired: PaymentRequired): Promise<boolean> {
    if (policy.channels === "prefer") return true;
    if (policy.channels === "never" || !rpcUrl) return false;
    const permit2Offers = paymentRequired.accepts.filter(settlesViaPermit2);
    if (permit2Offers.length === 0) return false;
    for (const offer of permit2Offers) {
      const allowance = await readPermit2Allowance(rpcUrl, offer.asset as `0x${string}`, payer).catch(
        () => undefined,
      );
      if (allowance === undefined || allowance >= BigInt(offer.amount)) return false;
    }
    return true;
  }

  /** A listing that offers batch-settlement marks its seller as one to pay by channel. */
  function noteChannelSellers(models: readonly ProviderModel[]) {
    for (const model of models) {
      if (model.schemes.includes("batch-settlement")) channelSellers.add(providerOrigin(model.baseUrl));
    }
  }

  const idle = async () => {
    // A receipt booked may start its on-chain check: both are waited for.
    do {
      while (background.size > 0) await Promise.all([...background]);
      await checksIdle();
    } while (background.size > 0);
  };
  return Object.assign(payingFetch as typeof fetch, {
    address: signer.address,
    spendStore: store,
    async discover(gatewayUrl: string) {
      const models = await fetchProviderModels(gatewayUrl, { fetch: baseFetch });
      quotes.learnFromModels(models);
      receiptSigners.learnFromModels(models);
      noteChannelSellers(models);
      return models;
    },
    learnPrices(models: readonly ProviderModel[]) {
      quotes.learnFromModels(models);
      receiptSigners.learnFromModels(models);
      noteChannelSellers(models);
    },
    paymentIdOf: (response: Response) => paymentIds.get(response),
    idle,
    async close() {
      await idle();
      await closeStore();
    },
  });
}
