import { inflateSync } from "node:zlib";
import { TollgateError } from "../errors/index.js";
import { utf8ByteLength } from "./tokenizer.js";

/** The most a file's compressed streams may inflate to before it is refused as unpriceable. */
const MAX_INFLATED_BYTES = 16 * 1024 * 1024;

const STREAM_START = /(?<!end)stream\r?\n/g;
const PAGE_OBJECT = /\/Type\s*\/Page(?![A-Za-z])/g;

const pagesIn = (text: string) => text.match(PAGE_OBJECT)?.length ?? 0;

/**
 * Tokens a file sent inline (`file_data`, a document's base64 `data`; a data URL or bare base64) may
 * count as. Every byte of it as a token; and for a PDF, what a backend reads out of it besides: the
 * text of its compressed (Flate) streams, a token a byte once inflated, and an image of every page
 * (`imageTokens` each), as OpenAI and Anthropic send each page both as text and as an image. A PDF
 * whose streams inflate past 16 MiB is refused (`field` named): its prompt cannot be bounded.
 */
export function fileTokenBound(data: string, imageTokens: number, field: string): number {
  const bytes = utf8ByteLength(data);
  const base64 = data.startsWith("data:") ? data.slice(data.indexOf(",") + 1) : data;
  const raw = Buffer.from(base64, "base64");
  if (raw.subarray(0, 5).toString("latin1") !== "%PDF-") return bytes;
  const text = raw.toString("latin1");
  let inflated = 0;
  let pages = pagesIn(text);
  STREAM_START.lastIndex = 0;
  for (let start = STREAM_START.exec(text); start; start = STREAM_START.exec(text)) {
    const from = start.index + start[0].length;
    const to = text.indexOf("endstream", from);
    if (to < 0) break;
    let out: Buffer | undefined;
    try {
      out = inflateSync(raw.subarray(from, to), {
        maxOutputLength: Math.max(1, MAX_INFLATED_BYTES - inflated),
      });
    } catch (error) {
      // Not Flate (an image, another filter, plain text): its bytes are counted already.
      if ((error as { code?: string }).code !== "ERR_BUFFER_TOO_LARGE") out = undefined;
      else
        throw new TollgateError({
          code: "TOLLGATE_REQUEST_INVALID",
          shortMessage: `${field} is a PDF whose streams inflate past ${MAX_INFLATED_BYTES / 1024 / 1024} MiB: its prompt cannot be priced; send its text instead`,
          details: { field },
        });
    }
    if (out) {
      inflated += out.length;
      pages += pagesIn(out.toString("latin1"));
    }
    STREAM_START.lastIndex = to;
  }
  return bytes + inflated + Math.max(pages, 1) * imageTokens;
}
