import type { InferenceRequest } from "./inferenceRequest.js";
import { type QuoteBook, termsOffListing } from "./quoteBook.js";
import { amountAboveListing, priceAboveListing } from "./quotedPrice.js";
import type { OfferChoice } from "./selectOffer.js";

/**
 * How the offer chosen from a 402 departs from what the seller's `/v1/models` listing said for the
 * request, in words, or undefined when it holds to it (or no listing was read). A seller chosen, or paid
 * at once, by its listing is held to it (no bait and switch): an exact offer, or any offer for a model
 * listed at a fixed price alone, to that price; otherwise an offer to the listed prices (an offer quoting
 * no prices, to what they come to for the request); each in the listed asset on the listed network.
 */
export async function offerOffListing(
  quotes: QuoteBook,
  url: string,
  request: InferenceRequest | undefined,
  choice: OfferChoice,
): Promise<string | undefined> {
  if (request === undefined) return undefined;
  const listed = quotes.listed(url, request);
  const listedExact = quotes.listedExact(url, request);
  // A model listed at a fixed price alone is held to it whatever the 402 offers: an upto or channel
  // maximum above it would let a seller chosen by that price charge more by its own prices.
  if (listedExact !== undefined && (choice.offer.scheme === "exact" || listedExact.alone)) {
    const asked =
      choice.offer.scheme === "exact"
        ? `a fixed price of ${choice.askedAtomic} atomic units`
        : `${choice.offer.scheme} up to ${choice.askedAtomic} atomic units`;
    return (
      termsOffListing(listedExact, choice.offer) ??
      (choice.askedAtomic > listedExact.amount ? `${asked}, listed ${listedExact.amount}` : undefined)
    );
  }
  if (listed === undefined) return undefined;
  return (
    termsOffListing(listed, choice.offer) ??
    priceAboveListing(listed.price, choice) ??
    (await amountAboveListing(listed.price, choice, request))
  );
}
