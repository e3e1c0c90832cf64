import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { Hex } from "viem";
import { createPayingFetch, type PayingFetch } from "../src/buyer/index.js";
import { createFacilitator } from "../src/facilitator/index.js";
import { createBilling, parseGatewayConfig, withTollgate } from "../src/gateway/index.js";
import { countTextTokens } from "../src/pricing/index.js";
import { type ScriptedAnswer, type ScriptedBackend, startScriptedBackend } from "./attack/scriptedBackend.js";
import { eventLog } from "./support/buyerFixtures.js";
import { startExpressSeller } from "./support/expressSeller.js";
import { billingTermsOf, type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { signHostilePayment } from "./support/hostileBuyer.js";
import { finalRow } from "./support/paidRequests.js";

// 0.000101 USDC per second of audio (OpenAI's whisper-1, $0.006 / minute, a hair more so that it
// shows) and 0.0001 USDC per request, in atomic units.
const PER_SECOND = 101n;
const FEE = 100n;
const chargeFor = (seconds: number) => BigInt(seconds) * PER_SECOND + FEE;
const SCRIPTED = "scripted-stt";
const PATH = "/v1/audio/transcriptions";

/** A RIFF/WAVE file of `seconds` of silence: mono PCM at `rate` samples a second, `bits` a sample. */
function wav(seconds: number, rate = 8_000, bits: 8 | 16 = 16): Uint8Array<ArrayBuffer> {
  const bytesPerSample = bits / 8;
  const data = Math.round(seconds * rate) * bytesPerSample;
  const file = Buffer.alloc(44 + data, bits === 8 ? 128 : 0);
  file.write("RIFF", 0, "ascii");
  file.writeUInt32LE(36 + data, 4);
  file.write("WAVE", 8, "ascii");
  file.write("fmt ", 12, "ascii");
  file.writeUInt32LE(16, 16);
  file.writeUInt16LE(1, 20);
  file.writeUInt16LE(1, 22);
  file.writeUInt32LE(rate, 24);
  file.writeUInt32LE(rate * bytesPerSample, 28);
  file.writeUInt16LE(bytesPerSample, 32);
  file.writeUInt16LE(bits, 34);
  file.write("data", 36, "ascii");
  file.writeUInt32LE(data, 40);
  return new Uint8Array(file);
}

/**
 * An MP3 of 1000 silent MPEG-1 Layer III frames (128 kbps, 44.1 kHz: 26 s) whose first frame carries a
 * Xing header stating 10 frames.
 */
function forgedMp3(): Uint8Array<ArrayBuffer> {
  const frameBytes = 417;
  const file = Buffer.alloc(frameBytes * 1000);
  for (let frame = 0; frame < 1000; frame += 1) file.set([0xff, 0xfb, 0x90, 0x00], frame * frameBytes);
  file.write("Xing", 36, "ascii");
  file.writeUInt32BE(3, 40);
  file.writeUInt32BE(10, 44);
  file.writeUInt32BE(10 * frameBytes, 48);
  return new Uint8Array(file);
}

// 2.5 s of audio: charged as 3 whole seconds.
const audio = wav(2.5);
const SECONDS = 3;

/** A transcription form: `fields` as text, then the file (unless `file` is null). */
function formOf(
  fields: Record<string, string | string[]>,
  file: Uint8Array<ArrayBuffer> | null = audio,
  name = "hello.wav",
): FormData {
  const form = new FormData();
  if (file !== null) form.append("file", new Blob([file], { type: "audio/wav" }), name);
  for (const [key, value] of Object.entries(fields))
    for (const item of Array.isArray(value) ? value : [value]) form.append(key, item);
  return form;
}

let h: GatewayHarness;
let scripted: ScriptedBackend;
const opened: PayingFetch[] = [];
const closers: (() => Promise<void>)[] = [];
const priced = { prices: { input_audio_seconds: PER_SECOND.toString() }, fixedFee: FEE.toString() };

before(async () => {
  scripted = await startScriptedBackend();
  h = await startGatewayHarness({
    extraModels: (baseUrl) => [
      { id: "mock-stt", kind: "transcription", backend: { baseUrl, model: "whisper-1" }, ...priced },
      { id: SCRIPTED, kind: "transcription", backend: { baseUrl: scripted.url }, ...priced },
    ],
  });
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  for (const close of closers) await close();
  await h?.close();
  await scripted?.close();
});

/** The 402 of an unpaid form: its header and upto amount. */
async function quoteForm(
  url: string,
  form: FormData,
): Promise<{ header: string; amount: bigint; text: string }> {
  const response = await fetch(url, { method: "POST", body: form });
  const text = await response.text();
  assert.equal(response.status, 402, text);
  const header = response.headers.get("payment-required");
  assert.ok(header);
  const offers = JSON.parse(Buffer.from(header, "base64").toString("utf8")) as {
    accepts: { scheme: string; amount: string }[];
  };
  const upto = offers.accepts.find((offer) => offer.scheme === "upto");
  assert.ok(upto);
  return { header, amount: BigInt(upto.amount), text };
}

/** Asks for the 402 of a form, signs it for real, sends the paid form; the ledger row once final, and what moved. */
async function payForm(url: string, form: FormData, privateKey: Hex, payer: Hex) {
  const quote = await quoteForm(url, form);
  const before = await h.devnet.usdcBalance(payer);
  const signature = await signHostilePayment({ paymentRequired: quote.header, privateKey });
  const response = await fetch(url, {
    method: "POST",
    headers: { "payment-signature": signature },
    body: form,
  });
  const body = await response.text();
  const row = await finalRow(h);
  return { response, body, row, offered: quote.amount, moved: before - (await h.devnet.usdcBalance(payer)) };
}

describe("POST /v1/audio/transcriptions", () => {
  test("a paid transcription: the quote's maximum is the charge, ceil(seconds) × price + fee = transfer = ledger row; the backend gets the same form under its own model name", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    const { response, body, row, offered, moved } = await payForm(
      `${h.gateway.url}${PATH}`,
      formOf({ model: "mock-stt", language: "en", temperature: "0.2" }),
      buyer.privateKey,
      buyer.address,
    );
    assert.equal(response.status, 200, body);
    assert.deepEqual(JSON.parse(body), {
      text: `The demo heard ${audio.byteLength} bytes of audio.`,
      usage: { type: "duration", seconds: SECONDS },
    });
    assert.ok(response.headers.get("payment-response"));
    const charge = chargeFor(SECONDS);
    assert.equal(charge, 403n, "2.5 s rounded up to 3 × 101 + 100");
    assert.equal(offered, charge, "the maximum is the charge: the duration is read from the file");
    assert.equal(row.route, PATH);
    assert.equal(row.status, "settled");
    assert.equal(row.chargeAtomic, charge);
    assert.equal(row.usage?.input_audio_seconds, SECONDS);
    assert.equal(moved, charge);
    const sent = h.backend.inferenceRequests.at(-1);
    assert.equal(sent?.path, PATH);
    assert.deepEqual(sent?.body, {
      file: { name: "hello.wav", type: "audio/wav", size: audio.byteLength },
      model: "whisper-1",
      language: "en",
      temperature: "0.2",
    });
  });

  test("a text, SRT or VTT transcript is charged the same and forwarded as the backend wrote it", async () => {
    for (const format of ["text", "srt", "vtt", "verbose_json"]) {
      const buyer = h.devnet.accounts.buyers[0]!;
      const { response, body, row, moved } = await payForm(
        `${h.gateway.url}${PATH}`,
        formOf({ model: "mock-stt", response_format: format }),
        buyer.privateKey,
        buyer.address,
      );
      assert.equal(response.status, 200, `${format}: ${body}`);
      assert.match(body, /The demo heard \d+ bytes of audio\./);
      assert.equal(row.chargeAtomic, chargeFor(SECONDS), format);
      assert.equal(moved, chargeFor(SECONDS), format);
    }
  });

  test("Tollgate's buyer pays a transcription as any route it cannot price: the 402's maximum, charged the file's seconds", async () => {
    const log = eventLog();
    const buyer = h.devnet.accounts.buyers[0]!;
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      dataDir: "memory://",
      onEvent: log.onEvent,
    });
    opened.push(payingFetch);
    const before = await h.devnet.usdcBalance(buyer.address);
    const response = await payingFetch(`${h.gateway.url}${PATH}`, {
      method: "POST",
      body: formOf({ model: "mock-stt" }),
    });
    const text = await response.text();
    assert.equal(response.status, 200, text);
    await payingFetch.idle();
    const [receipt] = log.of("receipt");
    assert.equal(receipt?.chargedAtomic, chargeFor(SECONDS));
    assert.equal(before - (await h.devnet.usdcBalance(buyer.address)), chargeFor(SECONDS));
  });
});

describe("a transcription backend that answers no transcript", () => {
  const paid = (format?: string) => {
    const buyer = h.devnet.accounts.buyers[1]!;
    return payForm(
      `${h.gateway.url}${PATH}`,
      formOf({ model: SCRIPTED, ...(format ? { response_format: format } : {}) }),
      buyer.privateKey,
      buyer.address,
    );
  };
  const json = { "content-type": "application/json" };
  const cases: [string, string | undefined, ScriptedAnswer][] = [
    [
      "answers a JSON error with 200",
      undefined,
      { pieces: [JSON.stringify({ error: { message: "bad audio" } })] },
    ],
    ["answers an empty transcript", undefined, { headers: json, pieces: [JSON.stringify({ text: "" })] }],
    ["answers 200 with an empty body", undefined, { headers: json, pieces: [] }],
    [
      "answers text when JSON was asked",
      undefined,
      { headers: { "content-type": "text/plain" }, pieces: ["hello"] },
    ],
    [
      "answers JSON when text was asked",
      "text",
      { headers: json, pieces: [JSON.stringify({ text: "hello" })] },
    ],
    ["answers an empty text", "text", { headers: { "content-type": "text/plain" }, pieces: ["  \n"] }],
    [
      "streams events",
      undefined,
      {
        headers: { "content-type": "text/event-stream" },
        pieces: ['data: {"type":"transcript.text.delta","delta":"hi"}\n\n'],
      },
    ],
    ["dies mid-body", undefined, { headers: json, pieces: ['{"text":"hel', 'lo"}'], breakAfter: 1 }],
    [
      "answers 500",
      undefined,
      { status: 500, headers: json, pieces: [JSON.stringify({ error: { message: "down" } })] },
    ],
  ];
  for (const [name, format, answer] of cases) {
    test(`${name}: nothing charged, nothing moved`, async () => {
      scripted.script = () => answer;
      const { response, body, row, moved } = await paid(format);
      assert.ok(response.status >= 400, `${name}: ${response.status} ${body}`);
      assert.equal(row.status, "failed");
      assert.equal(moved, 0n);
    });
  }

  test("a backend that reports more seconds than the file holds is not believed: the file's seconds are charged", async () => {
    scripted.script = () => ({
      headers: json,
      pieces: [JSON.stringify({ text: "hello", usage: { type: "duration", seconds: 600 } })],
    });
    const { response, body, row, moved } = await paid();
    assert.equal(response.status, 200, body);
    assert.equal(row.usage?.input_audio_seconds, SECONDS);
    assert.equal(row.chargeAtomic, chargeFor(SECONDS));
    assert.equal(moved, chargeFor(SECONDS));
  });
});

describe("a transcription the gateway cannot price", () => {
  const refused = async (form: FormData | string, field: string | null, status = 400) => {
    const response = await fetch(`${h.gateway.url}${PATH}`, {
      method: "POST",
      ...(typeof form === "string" ? { headers: { "content-type": "application/json" } } : {}),
      body: form,
    });
    const text = await response.text();
    assert.equal(response.status, status, text);
    const error = JSON.parse(text) as { error: { message: string; code: string; param?: unknown } };
    if (field !== null) {
      assert.equal(error.error.code, "TOLLGATE_REQUEST_INVALID");
      assert.ok(error.error.message.startsWith(field), `${error.error.message} names ${field}`);
    }
    return error.error.message;
  };

  test("is refused before any payment, naming the field", async () => {
    const reached = scripted.bodies.length;
    const model = SCRIPTED;
    const unreadable = await refused(formOf({ model }, new Uint8Array(4096).fill(7), "noise.wav"), "file");
    assert.match(unreadable, /send WAV \(convert other audio first/, "says which format is read");
    // A WAV whose header states 1 s but that holds 60 s: a decoder reading on would transcribe an hour for a second.
    const understated = wav(60);
    Buffer.from(understated.buffer).writeUInt32LE(16_000, 40);
    const short = await refused(formOf({ model }, understated, "short.wav"), "file");
    assert.match(short, /holds no more audio than its header states/);
    // An MP3 whose Xing frame states 10 frames (0.26 s) and that holds 1000 (26 s): its length is not provable.
    await refused(formOf({ model }, forgedMp3(), "forged.mp3"), "file");
    await refused(formOf({ model }, null), "file");
    await refused(formOf({ model }, new Uint8Array(0)), "file");
    await refused(formOf({ model, response_format: "ogg" }), "response_format");
    await refused(formOf({ model, temperature: "2" }), "temperature");
    await refused(formOf({ model, stream: "true" }), "stream");
    await refused(formOf({ model, chunking_strategy: "auto" }), "chunking_strategy");
    await refused(
      formOf({ model, "timestamp_granularities[]": ["word", "line"] }),
      "timestamp_granularities[]",
    );
    await refused(formOf({ model, language: ["en", "fr"] }), "language");
    // Two hours and a second, as 100 samples a second of 8 bits: 720 kB.
    const long = await refused(formOf({ model }, wav(7201, 100, 8)), "file");
    assert.match(long, /7201 seconds/);
    const message = await refused(JSON.stringify({ model, file: "audio" }), null);
    assert.match(message, /multipart\/form-data/);
    assert.equal(scripted.bodies.length, reached, "nothing reached the backend");
  });

  test("a form above the gateway's body limit is refused (413) before it is read", async () => {
    const reached = scripted.bodies.length;
    const message = await refused(formOf({ model: SCRIPTED }, wav(300)), null, 413);
    assert.match(message, /exceeds/);
    // Sent in chunks, with no length declared: counted as it comes.
    const encoded = new Response(formOf({ model: SCRIPTED }, wav(300)));
    const chunked = await fetch(`${h.gateway.url}${PATH}`, {
      method: "POST",
      headers: { "content-type": encoded.headers.get("content-type")! },
      body: encoded.body,
      duplex: "half",
    } as RequestInit);
    assert.equal(chunked.status, 413, await chunked.text());
    assert.equal(scripted.bodies.length, reached);
  });

  test("the 402's maximum is ceil(seconds) × price + fee, whatever the file's format says of itself", async () => {
    const { amount } = await quoteForm(`${h.gateway.url}${PATH}`, formOf({ model: SCRIPTED }, wav(59.01)));
    assert.equal(amount, chargeFor(60));
  });
});

describe("a host's own transcription route", () => {
  const urls: Record<"express" | "next", string> = { express: "", next: "" };
  before(async () => {
    const facilitator = createFacilitator({
      rpcUrl: h.devnet.rpcUrl,
      privateKey: h.devnet.accounts.facilitator.privateKey,
      network: h.devnet.network,
      pollingIntervalMs: 20,
    });
    const config = parseGatewayConfig({
      network: h.devnet.network,
      asset: h.devnet.contracts.usdc,
      payTo: h.devnet.accounts.payTo.address,
      models: [{ id: SCRIPTED, kind: "transcription", backend: { baseUrl: scripted.url }, ...priced }],
    });
    const billing = createBilling({
      terms: billingTermsOf(h.devnet, facilitator),
      models: config.models,
      facilitator,
      ledger: h.ledger.payments,
      countTokens: countTextTokens,
    });
    const seller = await startExpressSeller(billing, PATH, "application/json");
    closers.push(seller.close);
    urls.express = seller.url;

    // A Next.js route handler, served by Node's own HTTP server through the standard Request/Response.
    const route = withTollgate(
      async (request) => {
        // The handler is given the form the backend is sent: forward it as it is.
        const upstream = await fetch(`${scripted.url}${PATH}`, {
          method: "POST",
          headers: { "content-type": request.headers.get("content-type") ?? "" },
          body: await request.arrayBuffer(),
        });
        return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
      },
      { billing, routeKind: "transcription" },
    );
    const next = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const response = await route(
        new Request(`http://127.0.0.1${req.url}`, {
          method: "POST",
          headers: req.headers as Record<string, string>,
          body: Buffer.concat(chunks),
        }),
        {},
      );
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(Buffer.from(await response.arrayBuffer()));
    });
    next.listen(0, "127.0.0.1");
    await new Promise((resolve) => next.once("listening", resolve));
    closers.push(() => new Promise<void>((resolve) => next.close(() => resolve())));
    urls.next = `http://127.0.0.1:${(next.address() as AddressInfo).port}${PATH}`;
  });

  for (const adapter of ["express", "next"] as const) {
    test(`${adapter}: the form is read, priced from the file, forwarded as a form, and charged the file's seconds; a JSON error under 200 costs nothing`, async () => {
      const buyer = h.devnet.accounts.buyers[2]!;
      scripted.script = () => ({ pieces: [JSON.stringify({ text: "hello there" })] });
      const reached = scripted.bodies.length;
      const paid = await payForm(urls[adapter], formOf({ model: SCRIPTED }), buyer.privateKey, buyer.address);
      assert.equal(paid.response.status, 200, paid.body);
      assert.equal(JSON.parse(paid.body).text, "hello there");
      assert.equal(paid.offered, chargeFor(SECONDS));
      assert.equal(paid.row.chargeAtomic, chargeFor(SECONDS));
      assert.equal(paid.moved, chargeFor(SECONDS));
      assert.deepEqual(scripted.bodies.slice(reached), [
        { file: { name: "hello.wav", type: "audio/wav", size: audio.byteLength }, model: SCRIPTED },
      ]);

      scripted.script = () => ({ pieces: [JSON.stringify({ error: { message: "bad audio" } })] });
      const failed = await payForm(
        urls[adapter],
        formOf({ model: SCRIPTED }),
        buyer.privateKey,
        buyer.address,
      );
      assert.ok(failed.response.status >= 400, failed.body);
      assert.equal(failed.row.status, "failed");
      assert.equal(failed.moved, 0n);

      const unreadable = await fetch(urls[adapter], {
        method: "POST",
        body: formOf({ model: SCRIPTED }, new Uint8Array(512).fill(1)),
      });
      assert.equal(unreadable.status, 400);
      assert.match(((await unreadable.json()) as { error: { message: string } }).error.message, /^file /);
    });
  }
});
