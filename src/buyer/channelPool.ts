import { x402Client } from "@x402/core/client";
import type { ClientEvmSigner } from "@x402/evm";
import {
  type BatchSettlementClientDeps,
  BatchSettlementEvmScheme,
  type ClientChannelStorage,
} from "@x402/evm/batch-settlement/client";
import { type Hex, numberToHex } from "viem";
import type { PaymentRequirements } from "../protocol/index.js";

/** One channel of the pool, held by one request at a time (the scheme's rule). */
export type ChannelSlot = {
  /** The slot number; its channel's salt is this number as bytes32 (slot 0: the zero salt). */
  index: number;
  salt: Hex;
  scheme: BatchSettlementEvmScheme;
  /** `@x402/core`'s client with this slot's scheme registered for every EVM network. */
  client: x402Client;
  deps: BatchSettlementClientDeps;
  /** Sets the deposit the next payload signs, decided by the policy before signing. */
  planDeposit(amountAtomic: bigint | undefined): void;
  /** Frees the slot for the next request; idempotent. */
  release(): void;
};

export type ChannelPool = {
  /** Waits for a free channel to the seller of `offer`: the lowest free slot, up to `size`. */
  acquire(offer: PaymentRequirements): Promise<ChannelSlot>;
  /** The slot's scheme and deps without holding it (refunds, listings). */
  schemeFor(index: number): { scheme: BatchSettlementEvmScheme; deps: BatchSettlementClientDeps };
  readonly size: number;
};

/** The channel salt of slot `index`. */
export function slotSalt(index: number): Hex {
  return numberToHex(index, { size: 32 });
}

/** What makes two offers pay into the same channels: everything in the ChannelConfig but the salt. */
function sellerKey(offer: PaymentRequirements): string {
  const extra = offer.extra ?? {};
  return [
    offer.network,
    offer.asset,
    offer.payTo,
    String(extra.receiverAuthorizer),
    String(extra.withdrawDelay),
  ]
    .join("|")
    .toLowerCase();
}

/**
 * A pool of batch-settlement channels per seller. The scheme allows one request at a time per
 * channel, so concurrent requests to one seller each take their own channel (slot n uses salt n;
 * a quiet buyer only ever uses slot 0, so one deposit serves all its sequential requests). Slots
 * are deterministic, so a restarted buyer finds its channels again in its storage or on chain.
 */
export function createChannelPool({
  signer,
  storage,
  size,
}: {
  signer: ClientEvmSigner;
  storage: ClientChannelStorage;
  size: number;
}): ChannelPool {
  const schemes = new Map<number, { scheme: BatchSettlementEvmScheme; deps: BatchSettlementClientDeps }>();
  const busy = new Set<string>();
  const waiting = new Map<string, Array<() => void>>();
  /** Planned deposits by `<seller key>#<slot>`: only the request holding the slot sets its entry. */
  const planned = new Map<string, bigint>();

  const schemeFor = (index: number) => {
    let entry = schemes.get(index);
    if (!entry) {
      const salt = slotSalt(index);
      const scheme = new BatchSettlementEvmScheme(signer, {
        storage,
        salt,
        // The policy decides the deposit before anything is signed; the scheme signs that amount.
        depositStrategy: (context) =>
          planned.get(`${sellerKey(context.paymentRequirements)}#${index}`) ?? context.depositAmount,
      });
      entry = { scheme, deps: { signer, storage, salt } };
      schemes.set(index, entry);
    }
    return entry;
  };

  const take = (key: string, index: number): ChannelSlot => {
    const id = `${key}#${index}`;
    busy.add(id);
    const { scheme, deps } = schemeFor(index);
    let released = false;
    const slot: ChannelSlot = {
      index,
      salt: deps.salt,
      scheme,
      client: new x402Client().register("eip155:*", scheme).setSpendControls(false),
      deps,
      planDeposit(amountAtomic) {
        if (amountAtomic === undefined) planned.delete(id);
        else planned.set(id, amountAtomic);
      },
      release() {
        if (released) return;
        released = true;
        planned.delete(id);
        busy.delete(id);
        waiting.get(key)?.shift()?.();
      },
    };
    return slot;
  };

  return {
    size,
    schemeFor,
    async acquire(offer) {
      const key = sellerKey(offer);
      for (;;) {
        for (let index = 0; index < size; index += 1) {
          if (!busy.has(`${key}#${index}`)) return take(key, index);
        }
        await new Promise<void>((resume) => {
          const queue = waiting.get(key) ?? [];
          queue.push(resume);
          waiting.set(key, queue);
        });
      }
    },
  };
}
