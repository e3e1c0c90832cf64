import assert from "node:assert/strict";
import { test } from "node:test";
import type { PaymentRequirements } from "../protocol/index.js";
import { selectOffer } from "./selectOffer.js";
import { parseSpendingPolicy } from "./spendingPolicy.js";

const offer = (
  scheme: string,
  extra: Record<string, unknown> = {},
  amount = "1000",
): PaymentRequirements => ({
  scheme,
  network: "eip155:31337",
  amount,
  asset: "0x00000000000000000000000000000000000000BB",
  payTo: "0x00000000000000000000000000000000000000CC",
  maxTimeoutSeconds: 300,
  extra,
});

const accepts = [
  offer("upto"),
  offer("batch-settlement", { assetTransferMethod: "permit2", withdrawDelay: 86_400 }),
  offer("exact", {}, "500"),
  offer("batch-settlement", { assetTransferMethod: "eip3009", withdrawDelay: 86_400 }),
];
const origin = "http://127.0.0.1:4021";
const chosen = async (policyInput: unknown, channelsFirst?: boolean) => {
  const selected = await selectOffer({
    accepts,
    request: undefined,
    policy: parseSpendingPolicy(policyInput),
    origin,
    channelsFirst,
  });
  assert.ok(selected.ok);
  return [selected.choice.offer.scheme, selected.choice.offer.extra?.assetTransferMethod];
};

test("channels first by default, an ERC-3009 deposit before a Permit2 one", async () => {
  assert.deepEqual(await chosen({}), ["batch-settlement", "eip3009"]);
});

test("channels: fallback pays upto unless the wallet cannot pay through Permit2", async () => {
  assert.deepEqual(await chosen({ channels: "fallback" }), ["upto", undefined]);
  assert.deepEqual(await chosen({ channels: "fallback" }, true), ["batch-settlement", "eip3009"]);
});

test("channels: never refuses a channel-only seller by the scheme rule", async () => {
  assert.deepEqual(await chosen({ channels: "never" }), ["upto", undefined]);
  const only = await selectOffer({
    accepts: [offer("batch-settlement")],
    request: undefined,
    policy: parseSpendingPolicy({ channels: "never" }),
    origin,
  });
  assert.equal(only.ok, false);
  assert.equal(!only.ok && only.refusal.rule, "scheme");
});

test("maxDeposit is money, globally and per provider; a bad channels mode names the field", async () => {
  const policy = parseSpendingPolicy({ maxDeposit: "$1.50", providers: { [origin]: { maxDeposit: 2500 } } });
  assert.equal(policy.maxDeposit, 1_500_000n);
  assert.equal(policy.providers[origin]?.maxDeposit, 2500n);
  assert.throws(() => parseSpendingPolicy({ channels: "always" }), /channels/);
});

test("a channel whose withdrawal delay is above maxWithdrawDelaySeconds is refused, naming the rule", async () => {
  const long = offer("batch-settlement", { assetTransferMethod: "eip3009", withdrawDelay: 30 * 86_400 });
  const selected = await selectOffer({
    accepts: [long],
    request: undefined,
    policy: parseSpendingPolicy({}),
    origin,
  });
  assert.equal(selected.ok, false);
  assert.equal(!selected.ok && selected.refusal.rule, "maxWithdrawDelaySeconds");
  assert.match(
    !selected.ok ? selected.refusal.message : "",
    /2592000 s after a withdrawal starts, above .* 604800 s/,
  );
  const allowed = await selectOffer({
    accepts: [long],
    request: undefined,
    policy: parseSpendingPolicy({ maxWithdrawDelaySeconds: 30 * 86_400 }),
    origin,
  });
  assert.ok(allowed.ok);
});
