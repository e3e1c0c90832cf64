import type { Address } from "viem";
import type { BuyerEventListener } from "./BuyerEvent.js";
import type { AuthorizationChecker } from "./isAuthorizationUsed.js";
import type { SpendStore } from "./SpendStore.js";

/** How a reservation's note begins when the seller answered its paid request with a refusal (HTTP 402). */
export const SELLER_REFUSED_NOTE = "seller refused the payment";
/** How it begins when a paid MCP tool answered its call with payment required again. */
export const TOOL_REFUSED_NOTE = "the tool refused the payment";

export type ResolveLapsedReservationsParameters = {
  store: SpendStore;
  checker: AuthorizationChecker;
  emit?: BuyerEventListener;
  now?: Date;
};

/**
 * Frees reservations that never got a receipt once their authorization's deadline has passed, by
 * the chain's clock (its latest block), and the chain shows its nonce unspent: nothing can move any
 * more. This host's clock only picks the candidates: one running ahead of the chain's would free a
 * maximum the seller can still settle. A spent nonce keeps the maximum counted as the charge (the
 * seller settled without saying what); one the seller had answered with a refusal is disputed in full
 * (`settled_after_refusal`: it served nothing and took the payment). Only reservations on the checker's
 * chain are looked at.
 * Resolves to the number freed.
 */
export async function resolveLapsedReservations({
  store,
  checker,
  emit,
  now = new Date(),
}: ResolveLapsedReservationsParameters): Promise<number> {
  const lapsed = await store.lapsed(now);
  if (lapsed.length === 0) return 0;
  const network = `eip155:${await checker.chainId()}`;
  const chainMs = (await checker.chainSeconds()) * 1000;
  let freed = 0;
  for (const reservation of lapsed) {
    if (reservation.network !== network || reservation.nonce === undefined) continue;
    const used = await checker.isUsed({
      payer: reservation.payer as Address,
      asset: reservation.asset as Address,
      nonce: reservation.nonce,
    });
    if (used) {
      // Settled without a receipt: the amount is unknown, so the maximum stays counted.
      await store.note(reservation.id, "settled on chain without a receipt; counted at the maximum");
      await store.settle(reservation.id, { chargedAtomic: reservation.maxAtomic });
      const refusal = reservation.note;
      if (refusal?.startsWith(SELLER_REFUSED_NOTE) || refusal?.startsWith(TOOL_REFUSED_NOTE)) {
        const flagged = {
          origin: reservation.origin,
          reason: "settled_after_refusal" as const,
          chargedAtomic: reservation.maxAtomic,
          justifiedAtomic: 0n,
          maxAtomic: reservation.maxAtomic,
          transaction: "",
          network: reservation.network,
        };
        const disputeId = await store.recordDispute({
          ...flagged,
          reservationId: reservation.id,
          details: {
            message: `the seller answered the paid request with a refusal (${refusal}), then settled the authorization on chain; counted at the maximum`,
            url: reservation.url,
          },
        });
        emit?.({ ...flagged, type: "overcharge", paymentId: reservation.id, usage: undefined, disputeId });
      }
      continue;
    }
    // Settleable while a block's time is at most the deadline: the next block is later than the latest.
    if (reservation.deadline === undefined || reservation.deadline.getTime() >= chainMs) continue;
    await store.expire(reservation.id, "deadline passed; the authorization was never used on chain");
    emit?.({ type: "expired", paymentId: reservation.id, origin: reservation.origin });
    freed += 1;
  }
  return freed;
}
