import { crc32, deflateSync } from "node:zlib";
import { hashText } from "./hashText.js";

/**
 * A small PNG (RGB, `size` × `size` pixels) whose colours follow from `seed`: a diagonal
 * gradient, different for every prompt. Real PNG bytes, per the PNG specification
 * (https://www.w3.org/TR/png/): signature, IHDR, one zlib IDAT, IEND.
 */
export function generatedPng(seed: string, size = 16): Buffer {
  const hash = hashText(seed);
  const base = [hash & 0xff, (hash >>> 8) & 0xff, (hash >>> 16) & 0xff];
  const rows: Buffer[] = [];
  for (let y = 0; y < size; y++) {
    const row = Buffer.alloc(1 + size * 3);
    for (let x = 0; x < size; x++)
      for (let c = 0; c < 3; c++) row[1 + x * 3 + c] = ((base[c] ?? 0) + (x + y) * 8 * (c + 1)) & 0xff;
    rows.push(row);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}
