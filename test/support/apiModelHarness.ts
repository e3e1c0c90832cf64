import assert from "node:assert/strict";
import type { GatewayConfigInput } from "../../src/gateway/index.js";
import type { PaymentRecord } from "../../src/ledger/index.js";
import { type GatewayHarness, startGatewayHarness, testPrices } from "./gatewayHarness.js";

/**
 * The gateway harness with one more model, `id`, that the mock backend serves over `apis`: the
 * test prices, output capped at 256 tokens and counted by gpt-4o's tokenizer (the mock's words are
 * one o200k token each, so output is counted exactly and cut at the limit).
 */
export function startApiModelHarness({
  id,
  apis,
  model,
  extra,
}: {
  id: string;
  apis: NonNullable<GatewayConfigInput["models"][number]["backend"]["apis"]>;
  /** Changes to the harness's own mock model. */
  model?: Partial<GatewayConfigInput["models"][number]>;
  /** More settings of the model `id` (e.g. `prices` of cached input). */
  extra?: Partial<GatewayConfigInput["models"][number]>;
}): Promise<GatewayHarness> {
  return startGatewayHarness({
    model,
    extraModels: (baseUrl) => [
      {
        id,
        backend: { baseUrl, apis },
        tokenizer: "gpt-4o",
        inputPrice: testPrices.inputPerMTokAtomic.toString(),
        outputPrice: testPrices.outputPerMTokAtomic.toString(),
        maxOutputTokens: 256,
        ...extra,
      },
    ],
  });
}

/** Asserts the latest payment settled `charge` on `route` in `transaction`, and that exactly the charge left the payer on chain. */
export async function expectSettledPayment(
  h: GatewayHarness,
  {
    route,
    payer,
    before,
    charge,
    transaction,
  }: { route: string; payer: `0x${string}`; before: bigint; charge: bigint; transaction: string },
): Promise<PaymentRecord | undefined> {
  const [row] = await h.ledger.payments.recent({ limit: 1 });
  assert.equal(row?.status, "settled");
  assert.equal(row?.route, route);
  assert.equal(row?.chargeAtomic, charge, "the ledger row holds the charge");
  assert.equal(row?.transaction, transaction);
  assert.equal(await h.devnet.usdcBalance(payer), before - charge, "on chain, exactly the charge moved");
  return row;
}
