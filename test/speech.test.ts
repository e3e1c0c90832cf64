import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createPayingFetch, type PayingFetch } from "../src/buyer/index.js";
import { createFacilitator } from "../src/facilitator/index.js";
import { createBilling, parseGatewayConfig } from "../src/gateway/index.js";
import { countTextTokens } from "../src/pricing/index.js";
import { type ScriptedAnswer, type ScriptedBackend, startScriptedBackend } from "./attack/scriptedBackend.js";
import { eventLog, tempDataDir } from "./support/buyerFixtures.js";
import { startExpressSeller } from "./support/expressSeller.js";
import { billingTermsOf, type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { signHostilePayment } from "./support/hostileBuyer.js";
import { finalRow, payFor, postJson, quoteOf } from "./support/paidRequests.js";
import { runCli } from "./support/runCli.js";

// 15.000001 USDC per 1M characters (OpenAI's tts-1, a hair more so that rounding shows) and 0.0001 USDC
// per request, in atomic units.
const PER_M_CHARACTERS = 15_000_001n;
const FEE = 100n;
const chargeFor = (characters: number) =>
  (BigInt(characters) * PER_M_CHARACTERS + 999_999n) / 1_000_000n + FEE;
const SCRIPTED = "scripted-tts";

// 34 Unicode code points; 35 UTF-16 units (the car is two), 37 UTF-8 bytes.
const input = "Tolls are paid by the character 🚗!";
const CHARACTERS = 34;

let h: GatewayHarness;
let scripted: ScriptedBackend;
const opened: PayingFetch[] = [];
const closers: (() => Promise<void>)[] = [];

before(async () => {
  scripted = await startScriptedBackend();
  const priced = {
    prices: { input_characters: PER_M_CHARACTERS.toString() },
    fixedFee: FEE.toString(),
  };
  h = await startGatewayHarness({
    extraModels: (baseUrl) => [
      { id: "mock-tts", kind: "speech", backend: { baseUrl }, ...priced },
      { id: SCRIPTED, kind: "speech", backend: { baseUrl: scripted.url }, ...priced },
    ],
  });
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  for (const close of closers) await close();
  await h?.close();
  await scripted?.close();
});

describe("POST /v1/audio/speech", () => {
  test("Tollgate's buyer pays for speech: the quote's maximum is the charge, ceil(code points × price) + fee = transfer = ledger row = spend row; the WAV arrives byte for byte", async () => {
    assert.equal([...input].length, CHARACTERS);
    assert.notEqual(input.length, CHARACTERS, "a UTF-16 count would differ");
    const log = eventLog();
    const buyer = h.devnet.accounts.buyers[0]!;
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      dataDir: "memory://",
      policy: { maxOverExpected: 1 },
      onEvent: log.onEvent,
    });
    opened.push(payingFetch);
    const balanceBefore = await h.devnet.usdcBalance(buyer.address);
    const response = await payingFetch(`${h.gateway.url}/v1/audio/speech`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock-tts", input, voice: "alloy", response_format: "wav" }),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "audio/wav");
    const audio = Buffer.from(await response.arrayBuffer());
    assert.equal(audio.subarray(0, 4).toString("ascii"), "RIFF");
    assert.equal(audio.subarray(8, 12).toString("ascii"), "WAVE");
    // The demo reads 20 ms a character at 8 kHz, 16-bit: 320 bytes each, after a 44-byte header.
    assert.equal(audio.length, 44 + CHARACTERS * 320);
    assert.equal(audio.readUInt32LE(40), CHARACTERS * 320, "the data chunk holds every sample");

    await payingFetch.idle();
    const [authorized] = log.of("authorized");
    const [receipt] = log.of("receipt");
    assert.ok(authorized && receipt);
    const charge = chargeFor(CHARACTERS);
    assert.equal(charge, 611n, "34 × 15.000001 = 510.000034, rounded up, + 100");
    assert.equal(authorized.maxAtomic, charge, "the maximum is the charge: it is known from the request");
    assert.equal(authorized.expectedAtomic, charge, "the buyer's own estimate is the same");
    assert.equal(receipt.chargedAtomic, charge);
    const row = await finalRow(h);
    assert.equal(row.route, "/v1/audio/speech");
    assert.equal(row.status, "settled");
    assert.equal(row.chargeAtomic, charge);
    assert.equal(row.usage?.input_characters, CHARACTERS);
    const spent = await (await payingFetch.spendStore()).reservation(receipt.paymentId);
    assert.equal(spent?.chargedAtomic, charge, "the spend store holds the same charge");
    assert.deepEqual(await (await payingFetch.spendStore()).disputes(), []);
    assert.equal(await h.devnet.usdcBalance(buyer.address), balanceBefore - charge);
    const sent = h.backend.inferenceRequests.at(-1);
    assert.equal(sent?.path, "/v1/audio/speech");
    assert.deepEqual(sent?.body, { model: "mock-tts", input, voice: "alloy", response_format: "wav" });
  });

  test("tollgate pay writes the audio to stdout and the receipt line to stderr", async () => {
    const dataDir = await tempDataDir();
    try {
      const body = JSON.stringify({ model: "mock-tts", input, voice: "alloy", response_format: "wav" });
      const run = await runCli(["pay", "--url", `${h.gateway.url}/v1/audio/speech`, "--body", body], {
        TOLLGATE_PRIVATE_KEY: h.devnet.accounts.buyers[0]!.privateKey,
        TOLLGATE_DATA_DIR: dataDir.path,
      });
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.stdout.startsWith("RIFF"), "a WAV file on stdout");
      assert.equal(run.stdout.slice(8, 12), "WAVE");
      assert.match(run.stderr, /paid \$0\.000611 of \$0\.000611 authorized/);
    } finally {
      await dataDir.remove();
    }
  });

  test("the 402's maximum is ceil(characters × price) + fee", async () => {
    const { amount } = await quoteOf(h, "/v1/audio/speech", { model: SCRIPTED, input, voice: "alloy" });
    assert.equal(amount, chargeFor(CHARACTERS));
  });
});

describe("a speech backend that answers no audio", () => {
  const audioBytes = new Uint8Array(4096).fill(7);
  const paid = async (name: string) => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const before = await h.devnet.usdcBalance(buyer.address);
    const { response } = await payFor(
      h,
      "/v1/audio/speech",
      { model: SCRIPTED, input, voice: "alloy" },
      buyer.privateKey,
    );
    const body = Buffer.from(await response.arrayBuffer());
    const row = await finalRow(h);
    const moved = before - (await h.devnet.usdcBalance(buyer.address));
    return { response, body, row, moved, name };
  };

  const cases: [string, ScriptedAnswer][] = [
    [
      "answers a JSON error with 200",
      { pieces: [JSON.stringify({ error: { message: "voice not found", type: "invalid_request_error" } })] },
    ],
    ["answers 200 with an empty body", { headers: { "content-type": "audio/mpeg" }, pieces: [] }],
    [
      "dies mid-body",
      { headers: { "content-type": "audio/mpeg" }, pieces: [audioBytes, audioBytes], breakAfter: 1 },
    ],
    ["answers text/plain", { headers: { "content-type": "text/plain" }, pieces: ["speech, sort of"] }],
    ["answers with no content type", { headers: {}, pieces: [audioBytes] }],
    [
      "streams events",
      {
        headers: { "content-type": "text/event-stream" },
        pieces: ['data: {"type":"speech.audio.delta"}\n\n'],
      },
    ],
    ["answers 500", { status: 500, headers: { "content-type": "audio/mpeg" }, pieces: [audioBytes] }],
    [
      "answers a JSON error with 200, labelled audio",
      {
        headers: { "content-type": "audio/mpeg" },
        pieces: [` ${JSON.stringify({ error: { message: "voice not found" } })}`],
      },
    ],
  ];
  for (const [name, answer] of cases) {
    test(`${name}: no audio reaches the buyer, nothing charged, nothing moved`, async () => {
      scripted.script = () => answer;
      const { response, body, row, moved } = await paid(name);
      assert.ok(response.status >= 400, `${name}: ${response.status} ${body.toString()}`);
      assert.ok(!body.includes(audioBytes.subarray(0, 64)), "no audio reaches the buyer");
      assert.equal(row.status, "failed");
      assert.equal(moved, 0n);
      if (answer.status === 500) {
        // Audio under an error status is replaced by the gateway's error, at that code's status.
        assert.equal(response.status, 502);
        assert.equal(JSON.parse(body.toString()).error.code, "TOLLGATE_BACKEND_FAILED");
      }
    });
  }

  for (const type of ["application/octet-stream", "application/ogg"])
    test(`${type} audio is charged and forwarded byte for byte`, async () => {
      scripted.script = () => ({ headers: { "content-type": type }, pieces: [audioBytes, audioBytes] });
      const { response, body, row, moved } = await paid(type);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), type);
      assert.deepEqual(body, Buffer.concat([audioBytes, audioBytes]));
      assert.equal(row.chargeAtomic, chargeFor(CHARACTERS));
      assert.equal(moved, chargeFor(CHARACTERS));
    });
});

describe("a buyer that hangs up", () => {
  test("mid-audio pays the whole charge: the audio was made and charged before its first byte left", async () => {
    // 4 MB of audio: far more than one read of the buyer's socket.
    const chunk = new Uint8Array(64 * 1024).fill(9);
    scripted.script = () => ({
      headers: { "content-type": "audio/mpeg" },
      pieces: Array.from({ length: 64 }, () => chunk),
    });
    const buyer = h.devnet.accounts.buyers[2]!;
    const before = await h.devnet.usdcBalance(buyer.address);
    const { response } = await payFor(
      h,
      "/v1/audio/speech",
      { model: SCRIPTED, input, voice: "alloy" },
      buyer.privateKey,
    );
    assert.equal(response.status, 200);
    assert.ok(response.headers.get("payment-response"), "the settlement comes with the audio's headers");
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.ok(!first.done && first.value.byteLength < 64 * chunk.byteLength, "only part of the audio read");
    await reader.cancel();
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(row.chargeAtomic, chargeFor(CHARACTERS));
    assert.equal(before - (await h.devnet.usdcBalance(buyer.address)), chargeFor(CHARACTERS));
  });

  test("before the backend answered, once it had the request, pays the characters: it was read aloud", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached: () => void = () => {};
    const backendHasIt = new Promise<void>((resolve) => {
      reached = resolve;
    });
    scripted.script = () => {
      reached();
      return { headers: { "content-type": "audio/mpeg" }, pieces: ["audio"], waitBefore: { 0: held } };
    };
    const buyer = h.devnet.accounts.buyers[2]!;
    const before = await h.devnet.usdcBalance(buyer.address);
    const body = { model: SCRIPTED, input, voice: "alloy" };
    const quote = await quoteOf(h, "/v1/audio/speech", body);
    const signature = await signHostilePayment({
      paymentRequired: quote.header,
      privateKey: buyer.privateKey,
    });
    const leaving = new AbortController();
    const answer = fetch(`${h.gateway.url}/v1/audio/speech`, {
      method: "POST",
      headers: { "content-type": "application/json", "payment-signature": signature },
      body: JSON.stringify(body),
      signal: leaving.signal,
    }).catch((error: unknown) => error);
    await backendHasIt;
    leaving.abort();
    assert.ok((await answer) instanceof Error, "the buyer left without an answer");
    release();
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(row.chargeAtomic, chargeFor(CHARACTERS));
    assert.equal(before - (await h.devnet.usdcBalance(buyer.address)), chargeFor(CHARACTERS));
  });
});

describe("Express middleware on a host's own speech route", () => {
  let url = "";
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
      models: [
        {
          id: SCRIPTED,
          kind: "speech",
          backend: { baseUrl: scripted.url },
          prices: { input_characters: PER_M_CHARACTERS.toString() },
          fixedFee: FEE.toString(),
        },
      ],
    });
    const billing = createBilling({
      terms: billingTermsOf(h.devnet, facilitator),
      models: config.models,
      facilitator,
      ledger: h.ledger.payments,
      countTokens: countTextTokens,
    });
    const seller = await startExpressSeller(billing, "/v1/audio/speech", "application/octet-stream");
    closers.push(seller.close);
    url = seller.url;
  });

  const paidOnExpress = async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const body = JSON.stringify({ model: SCRIPTED, input, voice: "alloy" });
    const headers = { "content-type": "application/json" };
    const quoted = await fetch(url, { method: "POST", headers, body });
    assert.equal(quoted.status, 402);
    const balance = await h.devnet.usdcBalance(buyer.address);
    const signature = await signHostilePayment({
      paymentRequired: quoted.headers.get("payment-required")!,
      privateKey: buyer.privateKey,
    });
    const response = await fetch(url, {
      method: "POST",
      headers: { ...headers, "payment-signature": signature },
      body,
    });
    const answer = Buffer.from(await response.arrayBuffer());
    const row = await finalRow(h);
    return { response, answer, row, moved: balance - (await h.devnet.usdcBalance(buyer.address)) };
  };
  const audio = Buffer.from(Array.from({ length: 3000 }, (_, index) => (index * 37) % 256));

  test("audio the handler writes is charged and forwarded byte for byte, with its content type", async () => {
    scripted.script = () => ({
      headers: { "content-type": "audio/mpeg" },
      pieces: [audio.subarray(0, 1000), audio.subarray(1000)],
    });
    const { response, answer, row, moved } = await paidOnExpress();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "audio/mpeg");
    assert.ok(response.headers.get("payment-response"));
    assert.deepEqual(answer, audio, "every byte as it came (not read as UTF-8)");
    assert.equal(row.chargeAtomic, chargeFor(CHARACTERS));
    assert.equal(moved, chargeFor(CHARACTERS));
  });

  test("a JSON error under 200, or audio under a 500, is not forwarded and costs nothing", async () => {
    for (const answer of [
      { pieces: [JSON.stringify({ error: { message: "no such voice" } })] },
      { status: 500, headers: { "content-type": "audio/mpeg" }, pieces: [audio] },
    ] satisfies ScriptedAnswer[]) {
      scripted.script = () => answer;
      const { response, answer: body, row, moved } = await paidOnExpress();
      assert.ok(response.status >= 400, `${response.status}: ${body.toString()}`);
      assert.ok(!body.includes(audio.subarray(0, 64)), "no audio reaches the buyer");
      assert.equal(row.status, "failed");
      assert.equal(moved, 0n);
      if (answer.status === 500) {
        assert.equal(response.status, 502);
        assert.equal(JSON.parse(body.toString()).error.code, "TOLLGATE_BACKEND_FAILED");
      }
    }
  });
});

describe("a speech request the gateway cannot price", () => {
  test("is refused before any payment, naming the field", async () => {
    const reached = scripted.bodies.length;
    const voice = "alloy";
    for (const [body, field] of [
      [{ voice }, "input"],
      [{ input: "", voice }, "input"],
      [{ input: "a".repeat(4097), voice }, "input"],
      [{ input: "🚗".repeat(4097), voice }, "input"],
      [{ input }, "voice"],
      [{ input, voice: { id: "v".repeat(257) } }, "voice"],
      [{ input, voice: { id: "v", settings: "x".repeat(200_000) } }, "voice"],
      [{ input, voice: "v".repeat(257) }, "voice"],
      [{ input, voice, response_format: "ogg" }, "response_format"],
      [{ input, voice, speed: 5 }, "speed"],
      [{ input, voice, stream_format: "sse" }, "stream_format"],
      [{ input, voice, instructions: "x".repeat(4097) }, "instructions"],
      [{ input, voice, stream: true }, "stream"],
    ] as const) {
      const response = await postJson(h, "/v1/audio/speech", { model: SCRIPTED, ...body });
      const text = await response.text();
      assert.equal(response.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${text}`);
      const error = JSON.parse(text) as { error: { message: string; code: string } };
      assert.equal(error.error.code, "TOLLGATE_REQUEST_INVALID");
      assert.ok(error.error.message.startsWith(field), `${error.error.message} names ${field}`);
    }
    assert.equal(scripted.bodies.length, reached, "nothing reached the backend");
  });

  test("instructions are characters the model reads: priced beside the input", async () => {
    const { amount } = await quoteOf(h, "/v1/audio/speech", {
      model: SCRIPTED,
      input,
      voice: "alloy",
      instructions: "Speak like a toll collector",
    });
    assert.equal(amount, chargeFor(CHARACTERS + 27));
  });

  test("4096 characters are priced, however many UTF-16 units they take", async () => {
    const { amount } = await quoteOf(h, "/v1/audio/speech", {
      model: SCRIPTED,
      input: "🚗".repeat(4096),
      voice: "alloy",
    });
    assert.equal(amount, chargeFor(4096));
  });
});
