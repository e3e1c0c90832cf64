import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { seededRandom } from "../protocol/testing/seededRandom.js";
import { formatMoney, parseMoney } from "./money.js";

describe("parseMoney", () => {
  test("reads dollars exactly and integers as atomic units", () => {
    assert.equal(parseMoney("$0.05"), 50_000n);
    assert.equal(parseMoney("$0.15"), 150_000n);
    assert.equal(parseMoney("$5"), 5_000_000n);
    assert.equal(parseMoney("$0.000001"), 1n);
    assert.equal(parseMoney(" $1.500000 "), 1_500_000n);
    assert.equal(parseMoney("50000"), 50_000n);
    assert.equal(parseMoney("0"), 0n);
    assert.equal(parseMoney(50_000n), 50_000n);
    assert.equal(parseMoney(0), 0n);
    assert.equal(parseMoney("$1.5", { decimals: 18 }), 1_500_000_000_000_000_000n);
  });

  test("keeps sub-cent prices per million tokens exact where floats would not", () => {
    // 0.1 + 0.2 style drift cannot happen: $0.30 is exactly 300000 atomic.
    assert.equal(parseMoney("$0.10") + parseMoney("$0.20"), parseMoney("$0.30"));
    assert.equal(parseMoney("$123456789.123456"), 123_456_789_123_456n);
  });

  const refused: [string, string | number | bigint][] = [
    ["a bare decimal (ambiguous)", "0.05"],
    ["more decimals than the asset", "$0.0000001"],
    ["a negative amount", "-$1"],
    ["a negative atomic amount", -1n],
    ["a float", 0.05],
    ["a negative number", -5],
    ["an exponent", "1e6"],
    ["an empty string", ""],
    ["a lone dollar sign", "$"],
    ["a missing whole part", "$.05"],
    ["thousands separators", "$1,000"],
  ];
  for (const [what, value] of refused) {
    test(`refuses ${what}`, () => {
      assert.throws(
        () => parseMoney(value),
        (error) => isTollgateError(error, "TOLLGATE_CONFIG_INVALID"),
      );
    });
  }
});

describe("formatMoney", () => {
  test("trims to the cents by default and keeps every decimal on request", () => {
    assert.equal(formatMoney(50_000n), "$0.05");
    assert.equal(formatMoney(1_000_000n), "$1.00");
    assert.equal(formatMoney(1n), "$0.000001");
    assert.equal(formatMoney(0n), "$0.00");
    assert.equal(formatMoney(50_000n, { trim: false }), "$0.050000");
    assert.equal(formatMoney(-50_000n), "-$0.05");
    assert.equal(formatMoney(7n, 0), "$7");
    assert.equal(formatMoney(1_500_000_000_000_000_000n, 18), "$1.50");
  });

  test("parseMoney reads back exactly what formatMoney writes (seeded property)", () => {
    const random = seededRandom(6);
    for (let i = 0; i < 3000; i++) {
      const decimals = random.pick([0, 2, 6, 6, 6, 8, 18]);
      const atomic = random.bigint(random.pick([10n, 1_000_000n, 10n ** 30n]));
      const trim = random.next() < 0.5;
      const text = formatMoney(atomic, { decimals, trim });
      assert.equal(parseMoney(text, { decimals }), atomic, `${atomic} → ${text}`);
    }
  });
});
