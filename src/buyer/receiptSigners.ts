import { apiBaseUrl, fetchProviderModels, type ProviderModel } from "./providerModels.js";

/** The receipt keys sellers publish in `GET /v1/models`, per API base. */
export type ReceiptSignerBook = {
  learnFromModels(models: readonly ProviderModel[]): void;
  /**
   * The key that signs the receipts of `url`'s provider: learned from a listing, or read from its
   * `/v1/models` once. Undefined when the provider publishes none or cannot be asked.
   */
  signerFor(url: string): Promise<string | undefined>;
};

/** The API base a request URL belongs to: the path up to `/v1`, else the origin's `/v1`. */
function apiBaseOf(url: string): string {
  const parsed = new URL(url);
  const at = parsed.pathname.indexOf("/v1/");
  return at >= 0 ? `${parsed.origin}${parsed.pathname.slice(0, at + 3)}` : apiBaseUrl(parsed.origin);
}

export function createReceiptSignerBook({ fetch: fetchImpl }: { fetch: typeof fetch }): ReceiptSignerBook {
  const known = new Map<string, Promise<string | undefined>>();
  return {
    learnFromModels(models) {
      for (const model of models) {
        if (model.receiptSigner) known.set(model.baseUrl, Promise.resolve(model.receiptSigner));
      }
    },
    signerFor(url) {
      const base = apiBaseOf(url);
      let signer = known.get(base);
      if (!signer) {
        signer = fetchProviderModels(base, { fetch: fetchImpl }).then(
          (models) => models.find((model) => model.receiptSigner)?.receiptSigner,
          () => {
            // Asked again next time: the provider may have been briefly unreachable.
            known.delete(base);
            return undefined;
          },
        );
        known.set(base, signer);
      }
      return signer;
    },
  };
}
