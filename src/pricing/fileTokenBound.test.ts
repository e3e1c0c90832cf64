import assert from "node:assert/strict";
import { test } from "node:test";
import { deflateSync } from "node:zlib";
import { isTollgateError } from "../errors/index.js";
import { fileTokenBound } from "./fileTokenBound.js";

/** A PDF's bytes as a data URL: a header, the given objects, each stream Flate-compressed. */
function pdf(objects: Array<{ dictionary: string; stream?: Buffer }>): string {
  const parts: Buffer[] = [Buffer.from("%PDF-1.7\n")];
  objects.forEach((object, index) => {
    parts.push(Buffer.from(`${index + 1} 0 obj\n${object.dictionary}\n`));
    if (object.stream) {
      const packed = deflateSync(object.stream);
      parts.push(Buffer.from(`stream\n`), packed, Buffer.from("\nendstream\n"));
    }
    parts.push(Buffer.from("endobj\n"));
  });
  parts.push(Buffer.from("%%EOF\n"));
  return `data:application/pdf;base64,${Buffer.concat(parts).toString("base64")}`;
}

test("a file that is not a PDF is bounded by its bytes", () => {
  const data = `data:text/plain;base64,${Buffer.from("hello there").toString("base64")}`;
  assert.equal(fileTokenBound(data, 1_000, "f"), Buffer.byteLength(data));
});

test("a PDF counts the text of its compressed streams and an image of every page, wherever its pages are", () => {
  const text = Buffer.from("BT (the quick brown fox jumps over the lazy dog) Tj ET\n".repeat(2_000));
  // The pages sit in a compressed object stream; one content stream of 110 kB packs to a few hundred bytes.
  const pages = Buffer.from(
    Array.from({ length: 100 }, (_, i) => `${i + 10} 0 obj << /Type /Page >> endobj`).join("\n"),
  );
  const data = pdf([
    { dictionary: "<< /Type /Catalog /Pages 2 0 R >>" },
    { dictionary: "<< /Type /Pages /Count 100 >>" },
    { dictionary: "<< /Type /ObjStm /Filter /FlateDecode >>", stream: pages },
    { dictionary: "<< /Filter /FlateDecode >>", stream: text },
  ]);
  assert.ok(Buffer.byteLength(data) < 5_000, `${Buffer.byteLength(data)} bytes sent`);
  const bound = fileTokenBound(data, 1_000, "f");
  assert.ok(bound >= text.length + 100 * 1_000, `bound ${bound}`);
  // /Type /Pages is not a page.
  assert.ok(bound < text.length + pages.length + 102 * 1_000 + 5_000, `bound ${bound}`);
});

test("a PDF whose streams inflate past 16 MiB is refused, naming the field", () => {
  const bomb = pdf([{ dictionary: "<< /Filter /FlateDecode >>", stream: Buffer.alloc(17 * 1024 * 1024) }]);
  assert.throws(
    () => fileTokenBound(bomb, 1_000, "messages[0].content[1].file"),
    (error) =>
      isTollgateError(error, "TOLLGATE_REQUEST_INVALID") &&
      error.details.field === "messages[0].content[1].file" &&
      /inflate past 16 MiB/.test(error.shortMessage),
  );
});
