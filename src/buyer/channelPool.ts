import { randomUUID } from "node:crypto";
import { x402Client } from "@x402/core/client";
import type { ClientEvmSigner } from "@x402/evm";
import {
  type BatchSettlementClientDeps,
  BatchSettlementEvmScheme,
  type ClientChannelStorage,
} from "@x402/evm/batch-settlement/client";
import { type Hex, numberToHex } from "viem";
import type { PaymentRequirements } from "../protocol/index.js";
import type { SpendStore } from "./SpendStore.js";

/** One channel of the pool, held by one request at a time (the scheme's rule). */
export type ChannelSlot = {
  /** The slot number; its channel's salt is this number as bytes32 (slot 0: the zero salt). */
  index: number;
  salt: Hex;
  scheme: BatchSettlementEvmScheme;
  /** `@x402/core`'s client with this slot's scheme registered for every EVM network. */
  client: x402Client;
  deps: BatchSettlementClientDeps;
  /**
   * Sets the deposit the next payload signs, decided by the policy before signing. An `opening` deposit
   * (into a channel that holds nothing) is counted by `openingsOf` until the slot is released, in every
   * process sharing the spend store when the pool has leases.
   */
  planDeposit(
    amountAtomic: bigint | undefined,
    opening?: { origin: string; channelId: string },
  ): Promise<void>;
  /** Frees the slot for the next request; idempotent. */
  release(): void;
};

export type ChannelPool = {
  /** Waits for a free channel to the seller of `offer`: the lowest free slot, up to `size`. */
  acquire(offer: PaymentRequirements): Promise<ChannelSlot>;
  /** The slot's scheme and deps without holding it (refunds, listings). */
  schemeFor(index: number): { scheme: BatchSettlementEvmScheme; deps: BatchSettlementClientDeps };
  /**
   * The opening deposits planned for the provider's channels and not yet released, by channel id: this
   * process's, and with leases those of every process sharing the spend store.
   */
  openingsOf(origin: string | undefined): Promise<Map<string, bigint>>;
  /**
   * Waits until no other request of this payer (whatever its provider or paying fetch; with leases, in
   * any process sharing the spend store) is planning an opening deposit; the caller plans its own (and
   * registers it through `planDeposit`) before calling the returned function.
   */
  lockOpenings(): Promise<() => Promise<void>>;
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

/** Opening deposits planned and not yet settled, with the lock their planning takes. */
type OpeningRegistry = {
  openings: Map<string, { origin: string; channelId: string; amountAtomic: bigint }>;
  /** The end of the last opening being planned. */
  lock: Promise<void> | undefined;
};

/**
 * The registry of each payer in this process: the pools of several paying fetches of one key (an MCP
 * server's sessions, an SDK user's several fetches) count each other's openings, and plan them one at a
 * time, so `maxEscrow` and the per-provider bound hold between them as within one pool.
 */
const registries = new Map<string, OpeningRegistry>();

function registryOf(payer: string | undefined): OpeningRegistry {
  if (payer === undefined) return { openings: new Map(), lock: undefined };
  const key = payer.toLowerCase();
  let registry = registries.get(key);
  if (!registry) {
    registry = { openings: new Map(), lock: undefined };
    registries.set(key, registry);
  }
  return registry;
}

/** Leases of pool slots in a spend store that several processes share. */
export type ChannelSlotLeases = {
  store: () => Promise<SpendStore>;
  /** The payer: its channels are its own, whoever else shares the store. */
  payer: string;
  /** A lease not renewed lapses after this long (a crashed holder's slot comes free); default 60 s. */
  ttlMs?: number;
  /** How often a process waiting for a slot another holds looks again; default 100 ms. */
  retryMs?: number;
};

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
  leases,
}: {
  signer: ClientEvmSigner;
  storage: ClientChannelStorage;
  size: number;
  /**
   * With leases, a slot is taken only by winning its lease in the spend store, so buyer
   * processes sharing the store never send two requests on one channel at once.
   */
  leases?: ChannelSlotLeases | undefined;
}): ChannelPool {
  const holder = randomUUID();
  const ttlMs = leases?.ttlMs ?? 60_000;
  const retryMs = leases?.retryMs ?? 100;
  const schemes = new Map<number, { scheme: BatchSettlementEvmScheme; deps: BatchSettlementClientDeps }>();
  const busy = new Set<string>();
  const waiting = new Map<string, Array<() => void>>();
  /** Planned deposits by `<seller key>#<slot>`: only the request holding the slot sets its entry. */
  const planned = new Map<string, bigint>();
  /** The planned deposits of those that open a channel, by `<holder>|<seller key>#<slot>`, shared by the payer's pools. */
  const registry = registryOf(leases?.payer);
  const { openings } = registry;

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

  const poolKeyOf = (key: string) => `${leases?.payer.toLowerCase()}|${key}`;

  const take = (key: string, index: number): ChannelSlot => {
    const id = `${key}#${index}`;
    busy.add(id);
    const { scheme, deps } = schemeFor(index);
    let released = false;
    // A long request keeps its lease: renewed well before it would lapse.
    const renewal = leases
      ? setInterval(
          () => {
            void leases
              .store()
              .then((store) => store.renewChannelSlot(poolKeyOf(key), index, holder, ttlMs))
              .catch(() => undefined);
          },
          Math.max(1, Math.floor(ttlMs / 3)),
        )
      : undefined;
    renewal?.unref();
    const slot: ChannelSlot = {
      index,
      salt: deps.salt,
      scheme,
      client: new x402Client().register("eip155:*", scheme).setSpendControls(false),
      deps,
      async planDeposit(amountAtomic, opening) {
        if (amountAtomic === undefined) planned.delete(id);
        else planned.set(id, amountAtomic);
        const entry = amountAtomic === undefined || !opening ? undefined : { ...opening, amountAtomic };
        const hadOpening = openings.has(`${holder}|${id}`);
        if (entry === undefined) openings.delete(`${holder}|${id}`);
        else openings.set(`${holder}|${id}`, entry);
        // A voucher on a funded channel (the common case) writes nothing.
        if (!leases || (entry === undefined && !hadOpening)) return;
        const store = await leases.store();
        await store.planOpening(
          { poolKey: poolKeyOf(key), slot: index, holder },
          entry && { payer: leases.payer, ...entry },
        );
      },
      release() {
        if (released) return;
        released = true;
        planned.delete(id);
        openings.delete(`${holder}|${id}`);
        if (renewal) clearInterval(renewal);
        // The lease goes before the slot is free here, so this process's next taker wins it back.
        const given = leases
          ? leases
              .store()
              .then((store) => store.releaseChannelSlot(poolKeyOf(key), index, holder))
              .catch(() => undefined)
          : Promise.resolve();
        void given.finally(() => {
          busy.delete(id);
          waiting.get(key)?.shift()?.();
        });
      },
    };
    return slot;
  };

  return {
    size,
    schemeFor,
    async openingsOf(origin) {
      const planned = new Map<string, bigint>();
      const count = (channelId: string, amountAtomic: bigint) => {
        const id = channelId.toLowerCase();
        // One channel's opening is counted once, at the larger plan.
        if ((planned.get(id) ?? -1n) < amountAtomic) planned.set(id, amountAtomic);
      };
      for (const opening of openings.values())
        if (origin === undefined || opening.origin === origin) count(opening.channelId, opening.amountAtomic);
      if (leases) {
        const store = await leases.store();
        const others = await store.plannedOpenings({ payer: leases.payer, origin, exceptHolder: holder });
        for (const opening of others) count(opening.channelId, opening.amountAtomic);
      }
      return planned;
    },
    async lockOpenings() {
      const before = registry.lock ?? Promise.resolve();
      let unlock = () => {};
      const mine = new Promise<void>((resolve) => {
        unlock = resolve;
      });
      const held = before.then(() => mine);
      registry.lock = held;
      await before;
      const inProcess = () => {
        unlock();
        if (registry.lock === held) registry.lock = undefined;
      };
      if (!leases) return async () => inProcess();
      // Across processes sharing the store: the lease of the payer's openings, waited for.
      const lockKey = `openings|${leases.payer.toLowerCase()}`;
      try {
        for (;;) {
          const store = await leases.store();
          if (await store.leaseChannelSlot(lockKey, 0, holder, ttlMs)) break;
          await new Promise((resolve) => setTimeout(resolve, retryMs));
        }
      } catch (error) {
        inProcess();
        throw error;
      }
      return async () => {
        // A lease that cannot be given back lapses by itself after ttlMs.
        await leases
          .store()
          .then((store) => store.releaseChannelSlot(lockKey, 0, holder))
          .catch(() => undefined);
        inProcess();
      };
    },
    async acquire(offer) {
      const key = sellerKey(offer);
      for (;;) {
        for (let index = 0; index < size; index += 1) {
          const id = `${key}#${index}`;
          if (busy.has(id)) continue;
          if (!leases) return take(key, index);
          busy.add(id);
          let leased: boolean;
          try {
            const store = await leases.store();
            leased = await store.leaseChannelSlot(poolKeyOf(key), index, holder, ttlMs);
          } finally {
            busy.delete(id);
          }
          if (leased) return take(key, index);
        }
        // Woken by a slot freed here, or looking again for one freed by another process.
        await new Promise<void>((resume) => {
          const queue = waiting.get(key) ?? [];
          let timer: NodeJS.Timeout | undefined;
          const wake = () => {
            if (timer) clearTimeout(timer);
            const at = queue.indexOf(wake);
            if (at >= 0) queue.splice(at, 1);
            resume();
          };
          queue.push(wake);
          waiting.set(key, queue);
          if (leases) timer = setTimeout(wake, retryMs);
        });
      }
    },
  };
}
