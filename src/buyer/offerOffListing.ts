import type { InferenceRequest } from "./inferenceRequest.js";
import { type QuoteBook, termsOffListing } from "./quoteBook.js";
import { amountAboveListing, priceAboveListing } from "./quotedPrice.js";
import type { OfferChoice } from "./selectOffer.js";

/**
 * How the offer chosen from a 402 departs from what the seller's `/v1/models` listing said for the
 * request, in words, or undefined when it holds to it (or no listing was read). A seller chosen, or paid
 * at once, by its listing is held to it (no bait and switch): an exact offer to the fixed price the
 * listing gave the model, and where it gave none, an offer to the listed prices (an offer quoting no
 * prices, to what they come to for the request); either in the listed asset on the listed network.
 */
export async function offerOffListing(
  quotes: QuoteBook,
  url: string,
  request: InferenceRequest | undefined,
  choice: OfferChoice,
): Promise<string | undefined> {
  if (request === undefined) return undefined;
  const listedExact = choice.offer.scheme === "exact" ? quotes.listedExact(url, request) : undefined;
  if (listedExact !== undefined) {
    return (
      termsOffListing(listedExact, choice.offer) ??
      (choice.askedAtomic > listedExact.amount
        ? `a fixed price of ${choice.askedAtomic} atomic units, listed ${listedExact.amount}`
        : undefined)
    );
  }
  const listed = quotes.listed(url, request);
  if (listed === undefined) return undefined;
  return (
    termsOffListing(listed, choice.offer) ??
    priceAboveListing(listed.price, choice) ??
    (await amountAboveListing(listed.price, choice, request))
  );
}
