import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createPublicClient, erc20Abi, http } from "viem";
import { devnetCommand } from "../cli/devnetCommand.js";
import { isTollgateError } from "../errors/index.js";
import { compileContracts } from "./compileContracts.js";
import { PERMIT2_APPROVAL } from "./placeContracts.js";
import { type Devnet, MAX_DEVNET_BUYERS, startDevnet } from "./startDevnet.js";

describe("startDevnet buyers", () => {
  let devnet: Devnet;

  before(async () => {
    devnet = await startDevnet({ buyers: MAX_DEVNET_BUYERS, artifacts: await compileContracts() });
  });

  after(async () => {
    await devnet?.stop();
  });

  test("funds the maximum number of buyers, past anvil's 10 pre-funded accounts", async () => {
    const chain = createPublicClient({ transport: http(devnet.rpcUrl) });
    const { buyers } = devnet.accounts;
    assert.equal(buyers.length, MAX_DEVNET_BUYERS);
    assert.equal(new Set(buyers.map((buyer) => buyer.address)).size, MAX_DEVNET_BUYERS, "distinct accounts");
    for (const [i, buyer] of buyers.entries()) {
      const [usdc, allowance, eth] = await Promise.all([
        devnet.usdcBalance(buyer.address),
        chain.readContract({
          address: devnet.contracts.usdc,
          abi: erc20Abi,
          functionName: "allowance",
          args: [buyer.address, devnet.contracts.permit2],
        }),
        chain.getBalance({ address: buyer.address }),
      ]);
      assert.equal(usdc, 1_000_000_000n, `buyer ${i} USDC`);
      assert.equal(allowance, PERMIT2_APPROVAL, `buyer ${i} Permit2 allowance`);
      assert.ok(eth > 0n, `buyer ${i} has ETH for gas`);
    }
  });
});

describe("buyers above the maximum", () => {
  test("startDevnet refuses them before starting anvil", async () => {
    await assert.rejects(
      startDevnet({ buyers: MAX_DEVNET_BUYERS + 1 }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        error.shortMessage.includes(`1 to ${MAX_DEVNET_BUYERS}`),
    );
  });

  test("tollgate devnet --buyers names the flag and its maximum", async () => {
    await assert.rejects(
      devnetCommand(["--buyers", String(MAX_DEVNET_BUYERS + 1)]),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        error.shortMessage.includes("--buyers") &&
        error.shortMessage.includes(`at most ${MAX_DEVNET_BUYERS}`),
    );
  });
});
