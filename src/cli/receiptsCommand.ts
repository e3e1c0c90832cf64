import { readFile } from "node:fs/promises";
import { OFFER_RECEIPT } from "@x402/extensions/offer-receipt";
import { z } from "zod";
import { fetchProviderModels } from "../buyer/index.js";
import { TollgateError } from "../errors/index.js";
import {
  describeUnitPrices,
  formatMoney,
  isUsageUnit,
  UNIT_SCALE,
  type UnitPrices,
  USDC_DECIMALS,
} from "../pricing/index.js";
import {
  type CheckSignedReceiptsReturnType,
  checkSignedReceipts,
  decodePaymentResponseHeader,
  RECEIPT_FIELD,
  type SignedUsageReceipt,
  USAGE_RECEIPT_EXTENSION,
} from "../protocol/index.js";
import { exitCodes, parseFlags, printableLines, printError, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { jsonLine } from "./payCommand.js";

const flagsSchema = z.object({
  signer: z
    .string()
    .regex(/^0x[0-9a-fA-F]{40}$/, "an EVM address (0x + 40 hex digits)")
    .optional(),
  gateway: z.string().url().optional(),
  json: z.boolean().default(false),
});

/** `tollgate receipts verify FILE|-`: checks a saved receipt and says what it proves. */
export async function receiptsCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags("receipts", argv, commandFlags.receipts, flagsSchema, {
    positionals: true,
  });
  const [action, file, ...extra] = positionals;
  if (action !== "verify" || file === undefined || extra.length > 0) {
    throw usageError("receipts: say `verify` and one FILE (or - for standard input)");
  }
  const text =
    file === "-"
      ? await readStdin()
      : await readFile(file, "utf8").catch((cause) => {
          throw new TollgateError({
            code: "TOLLGATE_CONFIG_INVALID",
            shortMessage: `receipts: cannot read ${file}: ${(cause as Error).message}`,
          });
        });
  const extensions = extensionsIn(parseReceiptText(text));
  if (extensions === undefined) {
    printError(
      "tollgate receipts: no signed receipt found; give a PAYMENT-RESPONSE header (base64 or decoded JSON), a stream's receipt event, a spend row or dispute, or one signed receipt",
    );
    return exitCodes.failure;
  }
  const signer = flags.signer ?? (flags.gateway ? await publishedSigner(flags.gateway) : undefined);
  const check = await checkSignedReceipts(extensions, { signer, requireBoth: false });
  const valid =
    check.status !== "invalid" && check.status !== "absent" && check.overchargeAtomic === undefined;
  if (flags.json) printLine(jsonLine({ valid, ...check }));
  // A receipt's words (its model, its URL) are the seller's: written out, not obeyed, by the terminal.
  else printLine(printableLines(describeCheck(check, signer, flags.gateway)));
  return valid ? exitCodes.ok : exitCodes.failure;
}

async function publishedSigner(gateway: string): Promise<string> {
  const models = await fetchProviderModels(gateway);
  const signer = models.find((model) => model.receiptSigner)?.receiptSigner;
  if (!signer)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `receipts: ${gateway} publishes no receiptSigner in /v1/models; pass --signer`,
    });
  return signer;
}

function parseReceiptText(text: string): unknown {
  const trimmed = text.trim();
  if (trimmed.startsWith("data:")) return parseJson(trimmed.replace(/^data:\s*/, "").split(/\r?\n/)[0] ?? "");
  if (trimmed.startsWith("{")) return parseJson(trimmed);
  // A PAYMENT-RESPONSE header value, base64 JSON.
  const decoded = decodePaymentResponseHeader(trimmed);
  if (!decoded.ok)
    throw usageError(`receipts: not JSON, and not a PAYMENT-RESPONSE header (${decoded.message})`);
  return decoded.settleResponse;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw usageError(`receipts: the file is not valid JSON (${(cause as Error).message})`);
  }
}

/** Finds the receipts in any of the shapes Tollgate hands them out in. */
function extensionsIn(value: unknown): Record<string, unknown> | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const object = value as Record<string, unknown>;
  const wrap = (offerReceipt: unknown, usageReceipt: unknown) => ({
    ...(offerReceipt === undefined ? {} : { [OFFER_RECEIPT]: { info: { receipt: offerReceipt } } }),
    ...(usageReceipt === undefined ? {} : { [USAGE_RECEIPT_EXTENSION]: { info: { receipt: usageReceipt } } }),
  });
  if (typeof object.extensions === "object" && object.extensions !== null)
    return object.extensions as Record<string, unknown>;
  if (RECEIPT_FIELD in object) return extensionsIn(object[RECEIPT_FIELD]);
  if ("payment" in object) return extensionsIn(object.payment);
  if ("signedReceipts" in object) return extensionsIn(object.signedReceipts);
  if ("sellerStatement" in object) return extensionsIn(object.sellerStatement);
  if ("details" in object) return extensionsIn(object.details);
  if ("offerReceipt" in object || "usageReceipt" in object)
    return wrap(object.offerReceipt, object.usageReceipt);
  if (object.format === "eip712" && typeof object.payload === "object" && object.payload !== null) {
    return "chargeAtomic" in object.payload ? wrap(undefined, object) : wrap(object, undefined);
  }
  return undefined;
}

function describeCheck(
  check: CheckSignedReceiptsReturnType,
  signer: string | undefined,
  gateway?: string,
): string {
  const lines: string[] = [];
  if (check.status === "invalid") {
    lines.push("NOT VALID: this receipt proves nothing.");
    for (const problem of check.problems) lines.push(`  - ${problem}`);
    return lines.join("\n");
  }
  const who = signer
    ? `the receipt key ${gateway ? `${gateway} publishes` : "given with --signer"} (${signer})`
    : `${check.signer}; pass --signer or --gateway to check it is the seller's key`;
  const which = [check.offerReceipt && "x402 receipt", check.usageReceipt && "usage receipt"].filter(Boolean);
  lines.push(`valid: the ${which.join(" and the ")} ${which.length > 1 ? "are" : "is"} signed by ${who}.`);
  const offer = check.offerReceipt;
  if (offer) {
    lines.push(
      `  ${offer.payer} paid for ${offer.resourceUrl} on ${offer.network}${offer.transaction ? `, transaction ${offer.transaction}` : ""} (issued ${new Date(offer.issuedAt * 1000).toISOString()})`,
    );
  }
  const usage = check.usageReceipt?.payload;
  if (usage) {
    const charge = BigInt(usage.chargeAtomic);
    lines.push(
      `  model ${usage.model} on ${usage.route} (${usage.scheme}), payer ${usage.payer}, paid to ${usage.payTo}`,
      `  charged ${formatMoney(charge)} (${charge} atomic units of ${usage.asset}) of a maximum of ${formatMoney(BigInt(usage.maxAtomic))}`,
      `  usage   ${usage.usage.map((unit) => `${unit.unit} ${unit.amount}`).join(", ") || "none stated"}`,
      `  prices  ${describeStatedPrices(usage)}`,
    );
    if (usage.transaction) lines.push(`  transaction ${usage.transaction} on ${usage.network}`);
    if (BigInt(usage.channelId) !== 0n)
      lines.push(
        `  channel ${usage.channelId}, cumulative charged ${formatMoney(BigInt(usage.cumulativeAtomic))}`,
      );
    const justified = check.justifiedAtomic === undefined ? "" : formatMoney(check.justifiedAtomic);
    if (check.overchargeAtomic !== undefined) {
      lines.push(
        `OVERCHARGE: the seller's own signed usage at its own prices comes to ${justified}, yet it charged ${formatMoney(charge)} (${formatMoney(check.overchargeAtomic)} too much).`,
      );
    } else {
      lines.push(`  the charge is what this usage costs at these prices (${justified}), within the maximum.`);
    }
  }
  return lines.join("\n");
}

/**
 * A receipt's prices as the model listing words them, each per its own unit (`$3.00 / 1M input
 * tokens`, `$0.0036 / second of compute`, the fixed fee `/ request`); a unit Tollgate does not sell
 * per 1M of it. A receipt states prices in atomic units per million units: written in millionths
 * of an atomic unit, any such price is exact.
 */
function describeStatedPrices(usage: SignedUsageReceipt["payload"]): string {
  const known: UnitPrices = {};
  const others = new Map<string, bigint>();
  for (const { unit, perMillionAtomic } of usage.prices) {
    if (isUsageUnit(unit)) known[unit] = BigInt(perMillionAtomic) * UNIT_SCALE[unit];
    else others.set(unit, BigInt(perMillionAtomic));
  }
  known.requests = (known.requests ?? 0n) + BigInt(usage.fixedFeeAtomic) * PER_MILLION;
  const described = describeUnitPrices(known, { decimals: USDC_DECIMALS + 6 });
  const extra = [...others].map(
    ([unit, perMillionAtomic]) => `${formatMoney(perMillionAtomic)} / 1M ${unit}`,
  );
  if (extra.length === 0) return described;
  return [...(described === "free" ? [] : [described]), ...extra].join(", ");
}

const PER_MILLION = 1_000_000n;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function usageError(message: string): TollgateError {
  return new TollgateError({ code: "TOLLGATE_CONFIG_INVALID", shortMessage: message });
}
