import { TollgateError } from "../errors/index.js";

/** USDC and most x402 stablecoins have 6 decimals: `1_000_000n` atomic units = $1. */
export const USDC_DECIMALS = 6;

export type ParseMoneyOptions = {
  /** Decimals of the asset; a dollar amount may not be more precise than this. Default 6. */
  decimals?: number;
};

export type FormatMoneyOptions = {
  decimals?: number;
  /** Drop trailing zeros beyond the cents (`$0.05`); false keeps every decimal (`$0.050000`). Default true. */
  trim?: boolean;
};

const DOLLARS = /^\$([0-9]+)(?:\.([0-9]+))?$/;
const ATOMIC = /^[0-9]+$/;

/**
 * Reads an amount of money into atomic units, exactly (no floats anywhere). The syntax:
 * - `"$0.05"`, `"$5"`, `"$0.050000"`: the asset's whole units (dollars for USDC), with at most
 *   `decimals` digits after the point;
 * - `"50000"` (a bare integer string), `50000n`, or a safe integer number: atomic units;
 * - anything else is refused, including `"0.05"`: write `"$0.05"` for dollars or an integer for
 *   atomic units, so `"5"` can never be read as five dollars by mistake. Negative amounts are refused.
 * @example
 * parseMoney("$0.15") // 150000n
 * parseMoney("150000") // 150000n
 */
export function parseMoney(value: string | bigint | number, options: ParseMoneyOptions = {}): bigint {
  const decimals = checkDecimals(options.decimals ?? USDC_DECIMALS);
  if (typeof value === "bigint") {
    if (value < 0n) throw invalidMoney(value, "money cannot be negative");
    return value;
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw invalidMoney(
        value,
        'a number is read as atomic units and must be a non-negative integer; write "$0.05" for dollars',
      );
    }
    return BigInt(value);
  }
  const text = value.trim();
  if (ATOMIC.test(text)) return BigInt(text);
  const dollars = DOLLARS.exec(text);
  if (dollars === null) {
    throw invalidMoney(
      value,
      'expected "$<amount>" (e.g. "$0.05") or an integer number of atomic units (e.g. "50000")',
    );
  }
  const whole = dollars[1] ?? "0";
  const fraction = dollars[2] ?? "";
  if (fraction.length > decimals) {
    throw invalidMoney(value, `more than ${decimals} decimals; the asset cannot represent it exactly`);
  }
  return BigInt(whole) * 10n ** BigInt(decimals) + BigInt(fraction.padEnd(decimals, "0") || "0");
}

/**
 * Writes atomic units as `$` and the asset's whole units: `$0.05` (trimmed, the default) or
 * `$0.050000` with `{ trim: false }`. `parseMoney` reads back exactly what this writes.
 * Accepts a decimals number as the second argument for brevity: `formatMoney(x, 18)`.
 */
export function formatMoney(atomic: bigint, options: FormatMoneyOptions | number = {}): string {
  const { decimals: rawDecimals = USDC_DECIMALS, trim = true } =
    typeof options === "number" ? { decimals: options } : options;
  const decimals = checkDecimals(rawDecimals);
  const sign = atomic < 0n ? "-" : "";
  const magnitude = atomic < 0n ? -atomic : atomic;
  const unit = 10n ** BigInt(decimals);
  const whole = magnitude / unit;
  let fraction = decimals === 0 ? "" : (magnitude % unit).toString().padStart(decimals, "0");
  if (trim) {
    const keep = Math.min(2, decimals);
    fraction = fraction.replace(/0+$/, "");
    if (fraction.length < keep) fraction = fraction.padEnd(keep, "0");
  }
  return `${sign}$${whole}${fraction.length > 0 ? `.${fraction}` : ""}`;
}

function checkDecimals(decimals: number): number {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 36) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `decimals must be an integer from 0 to 36, got ${decimals}`,
      details: { decimals },
    });
  }
  return decimals;
}

function invalidMoney(value: unknown, reason: string): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_CONFIG_INVALID",
    shortMessage: `invalid amount ${JSON.stringify(typeof value === "bigint" ? `${value}n` : value)}: ${reason}`,
    details: { value: String(value) },
  });
}
