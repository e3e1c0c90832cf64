import assert from "node:assert/strict";
import { test } from "node:test";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { createAssetCheck } from "./acceptedAssets.js";

const baseUsdc = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
const hostile = `0x${"66".repeat(20)}`;
const requirements = (asset: string) => ({ asset }) as PaymentRequirements;
const payload = (inner: Record<string, unknown>) => ({ payload: inner }) as unknown as PaymentPayload;

test("by default a facilitator moves its network's USDC only; on the devnet any token", () => {
  const base = createAssetCheck("eip155:8453");
  assert.equal(base(payload({}), requirements(baseUsdc.toLowerCase())), undefined);
  assert.match(
    base(payload({}), requirements(hostile)) ?? "",
    /moves only 0x8335.* on eip155:8453, not 0x6666/,
  );
  assert.equal(createAssetCheck("eip155:31337")(payload({}), requirements(hostile)), undefined);
});

test("every token a payload names must be accepted: a Permit2 permit's, a channel's, a claim's, a settle's", () => {
  const check = createAssetCheck("eip155:31337", [baseUsdc]);
  const ok = requirements(baseUsdc);
  assert.equal(check(payload({ permit2Authorization: { permitted: { token: baseUsdc } } }), ok), undefined);
  for (const inner of [
    { permit2Authorization: { permitted: { token: hostile } } },
    { type: "deposit", channelConfig: { token: hostile } },
    {
      type: "claim",
      claims: [{ voucher: { channel: { token: baseUsdc } } }, { voucher: { channel: { token: hostile } } }],
    },
    { type: "settle", receiver: hostile, token: hostile },
  ])
    assert.match(check(payload(inner), ok) ?? "", /not 0x6666/, JSON.stringify(inner));
});
