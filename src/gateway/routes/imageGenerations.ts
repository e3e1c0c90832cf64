import type { UnitPrices } from "../../pricing/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import type { OutputReading, RouteAdapter } from "./RouteAdapter.js";
import { errorOf } from "./readChoices.js";
import { invalidField, pickAllowedFields, readCount, wholeAnswerRequest } from "./requestFields.js";

const ALLOWED = new Set([
  "model",
  "prompt",
  "n",
  "size",
  "quality",
  "style",
  "response_format",
  "background",
  "output_format",
  "output_compression",
  "moderation",
  "user",
]);
const IGNORED = new Set<string>();

/** The price of one image of `size` (and `quality`), from `imagePrices` (`"1024x1024"` or `"1024x1024/hd"`), else `prices.images`. */
function imagePriceOf(model: ModelConfig, size: string, quality: string | undefined): bigint | undefined {
  const table = model.imagePrices ?? {};
  return (
    (quality !== undefined ? table[`${size}/${quality}`] : undefined) ?? table[size] ?? model.prices?.images
  );
}

/** The size a request that names none gets: the size of the first `imagePrices` key (`"1024x1024/hd"` → `"1024x1024"`). */
function defaultSizeOf(model: ModelConfig): string | undefined {
  const [first] = Object.keys(model.imagePrices ?? {});
  return first?.split("/")[0];
}

/** An image the buyer can use: its data (`b64_json`) or its address (`url`), not an empty object. */
function isImage(item: unknown): boolean {
  if (typeof item !== "object" || item === null) return false;
  const { b64_json: data, url } = item as { b64_json?: unknown; url?: unknown };
  return (typeof data === "string" && data.length > 0) || (typeof url === "string" && url.length > 0);
}

function readImages(json: unknown): OutputReading {
  const error = errorOf(json);
  const data = (json as { data?: unknown } | null)?.data;
  const images = Array.isArray(data) ? data.filter(isImage).length : 0;
  const delivered = error === undefined && images > 0;
  return {
    pieces: [],
    delivered,
    usage: (json as { usage?: unknown } | null)?.usage,
    error: error ?? (delivered ? undefined : "the backend returned no image"),
    units: { images },
  };
}

/**
 * `POST /v1/images/generations`: priced per image by size (and quality where configured); the
 * maximum is `n` images, the charge the images actually returned (plus prompt tokens where priced).
 */
export const imageGenerations: RouteAdapter = {
  kind: "image",
  path: "/images/generations",
  canStream: false,
  outputTokens: false,
  meters: ["images"],
  promptField: "prompt",
  chunkObject: "image",
  emptyChunkChoice: {},

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/images/generations");
    if (typeof fields.prompt !== "string" || fields.prompt.length === 0)
      throw invalidField("prompt", "must be a non-empty string");
    if (fields.stream !== undefined)
      throw invalidField("stream", "is not supported: images are not streamed");
    const images = readCount(fields.n, "n", 10);
    return wholeAnswerRequest(fields, { images });
  },

  exactRefusal(request, model) {
    // A fixed price pays for the image its backend makes by default: the default size, its default quality.
    const size = defaultSizeOf(model);
    const asked = request.fields.size ?? undefined;
    if (asked !== undefined && asked !== size)
      return {
        reason: `${size ? `images of size ${size}` : "images of the backend's default size"}; this one asks for ${JSON.stringify(asked)}: leave size out`,
        field: "size",
      };
    if ((request.fields.quality ?? undefined) !== undefined)
      return {
        reason: `images of the backend's default quality; this one asks for ${JSON.stringify(request.fields.quality)}: leave quality out`,
        field: "quality",
      };
    return undefined;
  },

  requestPrices(request, model, prices): UnitPrices {
    const sizes = Object.keys(model.imagePrices ?? {});
    const size = request.fields.size ?? defaultSizeOf(model);
    const quality = request.fields.quality;
    const sizeNames = [...new Set(sizes.map((key) => key.split("/")[0]))].join(", ");
    if (size !== undefined && typeof size !== "string")
      throw invalidField("size", `must be a string${sizeNames ? `, one of ${sizeNames}` : ""}`);
    if (typeof size !== "string") throw invalidField("size", "is required: this model has no default size");
    if (quality !== undefined && typeof quality !== "string")
      throw invalidField("quality", "must be a string");
    // A model priced by quality says its backend's quality sets the cost: a size it does not list (or
    // `auto`) is not sold at `prices.images`, which would sell the backend's default quality, perhaps its best.
    const listed = sizes.some((key) => key === size || key.startsWith(`${size}/`));
    if (!listed && sizes.some((key) => key.includes("/")))
      throw invalidField(
        "size",
        `${JSON.stringify(size)} is not sold here; sizes: ${[...new Set(sizes.map((key) => key.split("/")[0]))].join(", ")}`,
      );
    // A quality named is sold only at its own price: never at the size's price, which is for the
    // backend's default quality (a dearer one named would cost the backend more than it was sold for).
    const priced = sizes.filter((key) => key.startsWith(`${size}/`)).map((key) => key.slice(size.length + 1));
    if (typeof quality === "string" && !priced.includes(quality))
      throw invalidField(
        "quality",
        priced.length > 0
          ? `${JSON.stringify(quality)} is not sold at size ${JSON.stringify(size)}; qualities: ${priced.join(", ")}${model.imagePrices?.[size] === undefined ? "" : ", or none for the size's base price"}`
          : `${JSON.stringify(quality)} is not priced at size ${JSON.stringify(size)}: leave quality out for the size's price, at the backend's default quality`,
      );
    // With no quality named, the backend picks its default: sold only where the size has a price of its own.
    if (quality === undefined && priced.length > 0 && model.imagePrices?.[size] === undefined)
      throw invalidField(
        "quality",
        `is required at size ${JSON.stringify(size)}, which is sold by quality only: ${priced.join(", ")}`,
      );
    const price = imagePriceOf(model, size, quality as string | undefined);
    if (price === undefined)
      throw invalidField(
        "size",
        `${JSON.stringify(size)}${quality ? ` at quality ${JSON.stringify(quality)}` : ""} is not sold here; sizes: ${sizes.join(", ") || "none"}`,
      );
    return { ...prices, images: price };
  },

  prompt(request) {
    return { kind: "embedding", body: { input: request.fields.prompt } };
  },

  backendBody(request, model) {
    const size = defaultSizeOf(model);
    return {
      ...request.fields,
      model: model.backend.model ?? model.id,
      n: request.images ?? 1,
      // A size left out, or null, is the size priced: the backend never picks its own.
      ...((request.fields.size ?? undefined) === undefined && size ? { size } : {}),
    };
  },

  readChunk: readImages,
  readAnswer: readImages,

  // A backend that made more images than `n`: the buyer gets the images it paid for.
  cutAnswer(answer, _choices, meter) {
    const data = (answer as { data?: unknown }).data;
    if (!Array.isArray(data)) return undefined;
    return { ...answer, data: data.filter(isImage).slice(0, meter.imageRoom ?? 0) };
  },
};
