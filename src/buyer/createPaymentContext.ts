import { x402Client } from "@x402/core/client";
import { ExactEvmScheme } from "@x402/evm/exact/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { createPublicClient, type Hex, http } from "viem";
import { privateKeyAccount } from "../chain/index.js";
import { TollgateError } from "../errors/index.js";
import type { ConfirmPayment, PaymentContext } from "./authorizePayment.js";
import type { BuyerEventListener } from "./BuyerEvent.js";
import { checkSettlementOnChain } from "./checkSettlementOnChain.js";
import { createAuthorizationChecker } from "./isAuthorizationUsed.js";
import { openSpendStore } from "./openSpendStore.js";
import { createReceiptSignerBook } from "./receiptSigners.js";
import { resolveLapsedReservations } from "./resolveLapsedReservations.js";
import type { SpendStore } from "./SpendStore.js";
import { parseSpendingPolicy, type SpendingPolicyInput } from "./spendingPolicy.js";

/** An EVM account that signs typed data: a viem `LocalAccount`, or `toClientEvmSigner(...)`. */
export type BuyerSigner = ConstructorParameters<typeof UptoEvmScheme>[0];

/** How a buyer pays: its key, policy, spend store, listener and confirmation. */
export type BuyerPaymentOptions = {
  /** The buyer's key; or pass `signer`. */
  privateKey?: Hex | undefined;
  signer?: BuyerSigner | undefined;
  /** The spending policy (already parsed, or as written in YAML / code). Default: no limits. */
  policy?: SpendingPolicyInput | undefined;
  /**
   * An RPC endpoint of the chain paid on: lets the upto/exact schemes sign gas-sponsoring extensions,
   * and checks every `upto` receipt against its transaction (`checkSettlementOnChain`).
   */
  rpcUrl?: string | undefined;
  /** Where the spend store lives (`<dataDir>/spend`); default `~/.tollgate`; `"memory://"` for none. */
  dataDir?: string | undefined;
  /** A spend store to use instead of opening one under `dataDir` (the caller closes it); may still be opening. */
  store?: SpendStore | Promise<SpendStore> | undefined;
  onEvent?: BuyerEventListener | undefined;
  /** Asked before signing a maximum above `confirmAbove`; without it such payments are refused. */
  confirm?: ConfirmPayment | undefined;
};

export type CreatePaymentContextParameters = BuyerPaymentOptions & {
  /** The function being set up, named in the error when neither a key nor a signer is given. */
  caller: string;
  /** The `fetch` that reads sellers' receipt keys. */
  fetch: typeof fetch;
};

export type CreatePaymentContextReturnType = {
  signer: BuyerSigner;
  context: PaymentContext;
  /** Closes the spend store if it was opened here (a store passed in is the caller's to close). */
  closeStore(): Promise<void>;
  /** Resolves when every receipt check started so far (`checkSettlement`) has ended. */
  idle(): Promise<void>;
  /**
   * With an RPC, at most every 30 s: frees the reservations whose deadline passed with their nonce
   * unspent, and books the maximum of those spent (`resolveLapsedReservations`).
   */
  freeLapsed(): Promise<void>;
};

/**
 * What every buyer pays with: the signer, the parsed spending policy, x402's client with the upto
 * and exact schemes (its own spend controls off: the policy replaces them), the spend store that
 * holds the reservations (opened on first use), and an event emitter a listener cannot break.
 */
export function createPaymentContext(
  parameters: CreatePaymentContextParameters,
): CreatePaymentContextReturnType {
  const signer =
    parameters.signer ?? (parameters.privateKey ? privateKeyAccount(parameters.privateKey) : undefined);
  if (!signer) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `${parameters.caller} needs a privateKey or a signer`,
    });
  }
  const policy = parseSpendingPolicy(parameters.policy ?? {});
  const schemeOptions = parameters.rpcUrl ? { rpcUrl: parameters.rpcUrl } : undefined;
  const client = new x402Client()
    .register("eip155:*", new UptoEvmScheme(signer, schemeOptions))
    .register("eip155:*", new ExactEvmScheme(signer, schemeOptions))
    .setSpendControls(false);
  let storePromise: Promise<SpendStore> | undefined;
  const store = () => {
    storePromise ??= parameters.store
      ? Promise.resolve(parameters.store)
      : openSpendStore({ dataDir: parameters.dataDir });
    return storePromise;
  };
  const emit: BuyerEventListener = (event) => {
    try {
      parameters.onEvent?.(event);
    } catch {
      // A listener's failure must not break a payment.
    }
  };
  const checks = new Set<Promise<void>>();
  const chain = parameters.rpcUrl
    ? createPublicClient({ transport: http(parameters.rpcUrl, { timeout: 10_000, retryCount: 1 }) })
    : undefined;
  const context: PaymentContext = {
    policy,
    client,
    payer: signer.address,
    store,
    confirm: parameters.confirm,
    emit,
    receiptSigners: createReceiptSignerBook({ fetch: parameters.fetch }),
  };
  if (chain)
    context.checkSettlement = (attempt, receipt) => {
      const check: Promise<void> = checkSettlementOnChain(context, chain, attempt, receipt)
        .catch(() => undefined)
        .finally(() => checks.delete(check));
      checks.add(check);
    };
  const checker = parameters.rpcUrl ? createAuthorizationChecker(parameters.rpcUrl) : undefined;
  let lastLapseCheck = 0;
  return {
    signer,
    context,
    async freeLapsed() {
      if (!checker || Date.now() - lastLapseCheck < 30_000) return;
      lastLapseCheck = Date.now();
      await resolveLapsedReservations({ store: await store(), checker, emit }).catch(() => undefined);
    },
    async idle() {
      while (checks.size > 0) await Promise.all(checks);
    },
    async closeStore() {
      if (!storePromise || parameters.store) return;
      const opened = await storePromise.catch(() => undefined);
      await opened?.close();
    },
  };
}
