import assert from "node:assert/strict";
import { test } from "node:test";
import type { SupportedResponse } from "@x402/core/types";
import { networkPresets } from "../src/chain/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { type FacilitatorLike, parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { createLedger, createPgliteClient } from "../src/ledger/index.js";

const deadRpc = "http://127.0.0.1:9";
const polygon = "eip155:137";

/** A facilitator that answers /supported for upto on Polygon and is never asked anything else here. */
const facilitator: FacilitatorLike = {
  getSupported: async (): Promise<SupportedResponse> => ({
    kinds: [
      {
        x402Version: 2,
        scheme: "upto",
        network: polygon,
        extra: { facilitatorAddress: `0x${"fa".repeat(20)}` },
      },
    ],
    extensions: [],
    signers: {},
  }),
  verify: async () => {
    throw new Error("not used");
  },
  settle: async () => {
    throw new Error("not used");
  },
};

/** A Polygon gateway config whose RPC answers nothing. */
function configWith(asset: string | undefined) {
  return parseGatewayConfig({
    network: polygon,
    rpcUrl: deadRpc,
    ...(asset ? { asset } : {}),
    payTo: `0x${"22".repeat(20)}`,
    server: { port: 0 },
    models: [{ id: "m", backend: { baseUrl: "http://127.0.0.1:9/v1" }, inputPrice: "$1", outputPrice: "$2" }],
  });
}

test("a gateway whose asset's decimals cannot be read refuses to start, naming the asset and the RPC", async () => {
  const asset = `0x${"18".repeat(20)}`;
  const ledger = await createLedger(await createPgliteClient());
  try {
    await assert.rejects(
      startGateway({ config: configWith(asset), ledger, facilitator }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        error.shortMessage.includes(`the decimals of ${asset} could not be read from the RPC ${deadRpc}`) &&
        /set rpcUrl to an RPC of this network that answers/.test(error.shortMessage),
    );
  } finally {
    await ledger.close();
  }
});

test("a gateway on the network's own USDC starts with its RPC down: those 6 decimals are known", async () => {
  const ledger = await createLedger(await createPgliteClient());
  try {
    for (const asset of [undefined, networkPresets[polygon]?.usdc?.toLowerCase()]) {
      const gateway = await startGateway({ config: configWith(asset), ledger, facilitator });
      await gateway.close();
    }
  } finally {
    await ledger.close();
  }
});
