import type { ClientChannelStorage } from "@x402/evm/batch-settlement/client";
import type { SpendStore } from "./SpendStore.js";

/**
 * The official batch-settlement client's `ClientChannelStorage` on the spend store: a channel's
 * record (balance, charged cumulative amount, last voucher) lives beside the spend it caused, so
 * a restarted process keeps its channels. `store` is asked for on each call (it opens lazily).
 */
export function spendChannelStorage(store: () => Promise<SpendStore>): ClientChannelStorage {
  return {
    get: async (key) => (await store()).channelContext(key),
    set: async (key, context) => (await store()).saveChannelContext(key, context),
    delete: async (key) => (await store()).deleteChannelContext(key),
  };
}
