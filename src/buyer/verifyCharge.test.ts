import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { costAtomic } from "../pricing/index.js";
import { justifiedChargeAtomic } from "./quotedPrice.js";
import { tapResponseBody } from "./tapResponseBody.js";
import { verifyCharge } from "./verifyCharge.js";

const price = { inputPerMTokAtomic: 150_000n, outputPerMTokAtomic: 600_000n, fixedFeeAtomic: 7n };
const estimate = { promptTokenBound: 500, outputTokens: 200, completions: 1, expectedMaxAtomic: 0n };

describe("verifyCharge", () => {
  test("never flags an honest charge (random usages within the bounds)", () => {
    for (let run = 0; run < 500; run++) {
      const usage = {
        promptTokens: Math.floor(Math.random() * 501),
        completionTokens: Math.floor(Math.random() * 201),
      };
      const charged = costAtomic(usage, { ...price, maxOutputTokens: 1 });
      const verdict = verifyCharge({ chargedAtomic: charged, maxAtomic: 1_000n, usage, price, estimate });
      assert.ok(verdict.ok, `usage ${JSON.stringify(usage)} charged ${charged}`);
    }
  });

  test("flags one atomic unit above what the usage justifies", () => {
    const usage = { promptTokens: 100, completionTokens: 50 };
    const justified = costAtomic(usage, { ...price, maxOutputTokens: 1 });
    const verdict = verifyCharge({
      chargedAtomic: justified + 1n,
      maxAtomic: 1_000n,
      usage,
      price,
      estimate,
    });
    assert.deepEqual(
      { ok: verdict.ok, reason: !verdict.ok && verdict.reason, justified: verdict.justifiedAtomic },
      { ok: false, reason: "above_usage", justified },
    );
  });

  test("holds a prompt the seller counted itself to the buyer's own count: at it passes, above it is flagged", () => {
    const charge = (promptTokens: number) =>
      costAtomic({ promptTokens, completionTokens: 3 }, { ...price, maxOutputTokens: 1 });
    const at = (promptTokens: number) =>
      verifyCharge({
        chargedAtomic: charge(promptTokens),
        maxAtomic: 1_000n,
        usage: { promptTokens, completionTokens: 3 },
        price,
        estimate,
        promptCountLimit: 8,
      });
    assert.equal(at(8).ok, true);
    const inflated = at(20);
    assert.deepEqual(
      { ok: inflated.ok, reason: !inflated.ok && inflated.reason, justified: inflated.justifiedAtomic },
      { ok: false, reason: "usage_above_bound", justified: charge(8) },
    );
    // Without the seller saying it counted the prompt, 20 is within the bound and stands.
    const reported = { promptTokens: 20, completionTokens: 3 };
    assert.equal(
      verifyCharge({ chargedAtomic: charge(20), maxAtomic: 1_000n, usage: reported, price, estimate }).ok,
      true,
    );
  });

  test("flags a charge above the signed maximum, even without usage", () => {
    const verdict = verifyCharge({ chargedAtomic: 1_001n, maxAtomic: 1_000n });
    assert.equal(!verdict.ok && verdict.reason, "above_maximum");
  });

  test("with no usage reported, flags a charge above what the buyer's own bounds cost, and only that", () => {
    const bounds = { ...estimate, expectedMaxAtomic: 240n };
    const at = (chargedAtomic: bigint) =>
      verifyCharge({ chargedAtomic, maxAtomic: 1_000n, price, estimate: bounds });
    assert.equal(at(240n).ok, true);
    const above = at(241n);
    assert.deepEqual(
      { ok: above.ok, reason: !above.ok && above.reason, justified: above.justifiedAtomic },
      { ok: false, reason: "usage_above_bound", justified: 240n },
    );
    assert.equal(
      verifyCharge({ chargedAtomic: 241n, maxAtomic: 1_000n }).ok,
      true,
      "no prices: nothing to hold it to",
    );
  });

  test("justifies no unit a chat request cannot use: images and output bytes in its usage are flagged", () => {
    const unitPrice = {
      ...price,
      units: { input_tokens: 150_000n, output_tokens: 600_000n, images: 4_000n, output_bytes: 1_000_000n },
    };
    const tokens = { input_tokens: 3, output_tokens: 1 };
    const honest = justifiedChargeAtomic({ promptTokens: 3, completionTokens: 1, units: tokens }, unitPrice);
    const extras: Array<Record<string, number>> = [{ images: 5 }, { output_bytes: 200_000 }];
    for (const extra of extras) {
      const usage = { promptTokens: 3, completionTokens: 1, units: { ...tokens, ...extra } };
      const charged = justifiedChargeAtomic(usage, unitPrice);
      assert.ok(charged > honest, `${JSON.stringify(extra)}: ${charged} vs ${honest}`);
      const verdict = verifyCharge({
        chargedAtomic: charged,
        maxAtomic: 1_000_000n,
        usage,
        price: unitPrice,
        estimate,
      });
      assert.deepEqual(
        { ok: verdict.ok, reason: !verdict.ok && verdict.reason, justified: verdict.justifiedAtomic },
        { ok: false, reason: "usage_above_bound", justified: honest },
        `${JSON.stringify(extra)}: ${JSON.stringify(verdict, (_k, v) => (typeof v === "bigint" ? `${v}` : v))}`,
      );
    }
  });

  test("flags a receipt that states another charge than the one that moved, above or below", () => {
    for (const statedAtomic of [0n, 999n, 1_001n]) {
      const verdict = verifyCharge({ chargedAtomic: 1_000n, statedAtomic, maxAtomic: 1_000n });
      assert.equal(!verdict.ok && verdict.reason, "misstated_charge", `stated ${statedAtomic}`);
    }
    assert.ok(verifyCharge({ chargedAtomic: 1_000n, statedAtomic: 1_000n, maxAtomic: 1_000n }).ok);
  });

  test("accepts the output of every completion the buyer asked for (n × the limit)", () => {
    const usage = { promptTokens: 500, completionTokens: 5 * 200 };
    const charged = costAtomic(usage, { ...price, maxOutputTokens: 1 });
    const verdict = verifyCharge({
      chargedAtomic: charged,
      maxAtomic: 10_000n,
      usage,
      price,
      estimate: { ...estimate, completions: 5 },
    });
    assert.deepEqual(verdict, { ok: true, justifiedAtomic: charged });
  });

  test("flags output beyond n × the limit as above the buyer's bounds", () => {
    const usage = { promptTokens: 500, completionTokens: 5 * 200 + 100 };
    const charged = costAtomic(usage, { ...price, maxOutputTokens: 1 });
    const verdict = verifyCharge({
      chargedAtomic: charged,
      maxAtomic: 10_000n,
      usage,
      price,
      estimate: { ...estimate, completions: 5 },
    });
    assert.equal(!verdict.ok && verdict.reason, "usage_above_bound");
  });

  test("does not believe usage beyond the buyer's own bounds", () => {
    const inflated = { promptTokens: 5_000, completionTokens: 200 };
    const charged = costAtomic(inflated, { ...price, maxOutputTokens: 1 });
    const verdict = verifyCharge({
      chargedAtomic: charged,
      maxAtomic: 10_000n,
      usage: inflated,
      price,
      estimate,
    });
    assert.equal(!verdict.ok && verdict.reason, "usage_above_bound");
    assert.equal(
      verdict.justifiedAtomic,
      costAtomic({ promptTokens: 500, completionTokens: 200 }, { ...price, maxOutputTokens: 1 }),
    );
  });
});

describe("tapResponseBody", () => {
  test("passes every byte through as it comes and finds a receipt split across reads", async () => {
    const receipt = 'data: {"choices":[],"x402_receipt":{"amount":"5"}}\r\n\r\n';
    const pieces = [
      'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n',
      receipt.slice(0, 20),
      receipt.slice(20),
      "data: [DONE]\n\n",
    ];
    const encoder = new TextEncoder();
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const piece of pieces) controller.enqueue(encoder.encode(piece));
        controller.close();
      },
    });
    const seen: string[] = [];
    let ended = false;
    const tapped = tapResponseBody(source, {
      mode: "sse",
      onSseData: (data) => seen.push(data),
      onEnd: async () => {
        ended = true;
      },
    });
    const out: string[] = [];
    for await (const chunk of tapped) out.push(new TextDecoder().decode(chunk));
    assert.deepEqual(out, pieces, "chunk for chunk, unchanged");
    assert.deepEqual(seen, ['{"choices":[],"x402_receipt":{"amount":"5"}}']);
    assert.equal(ended, true);
  });
});
