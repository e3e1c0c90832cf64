import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openSpendStore } from "../src/buyer/index.js";
import { runMain } from "./support/runMain.js";

const devnetUsdc = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const polygonUsdc = "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359";

test("tollgate spend keeps each network and asset apart: devnet test USDC is not real USDC", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "tollgate-spend-"));
  try {
    const store = await openSpendStore({ dataDir });
    const reserve = async (network: string, asset: string, maxAtomic: bigint) => {
      const reserved = await store.reserve({
        origin: "https://seller.example",
        url: "https://seller.example/v1/chat/completions",
        payer: "0x0000000000000000000000000000000000000002",
        scheme: "upto",
        network,
        asset,
        payTo: "0x0000000000000000000000000000000000000003",
        maxAtomic,
      });
      assert.ok(reserved.ok);
      await store.settle(reserved.id, { chargedAtomic: maxAtomic / 2n });
    };
    await reserve("eip155:31337", devnetUsdc, 400_000n);
    await reserve("eip155:31337", devnetUsdc, 200_000n);
    await reserve("eip155:137", polygonUsdc, 20_000n);
    await store.close();

    const run = await runMain(["spend", "--json"], { TOLLGATE_DATA_DIR: dataDir, DATABASE_URL: undefined });
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as {
      byAsset: Array<{ network: string; asset: string; chargedAtomic: string }>;
      providers: Array<{ origin: string; network: string; asset: string; chargedAtomic: string }>;
    };
    assert.deepEqual(
      report.byAsset.map(({ network, asset, chargedAtomic }) => [network, asset, chargedAtomic]),
      [
        ["eip155:137", polygonUsdc, "10000"],
        ["eip155:31337", devnetUsdc, "300000"],
      ],
    );
    assert.equal(report.providers.length, 2, "one provider, one row per network and asset");

    const text = await runMain(["spend"], { TOLLGATE_DATA_DIR: dataDir, DATABASE_URL: undefined });
    assert.match(text.stdout, new RegExp(`eip155:137 · asset ${polygonUsdc}: \\$0\\.01\\n`));
    assert.match(text.stdout, new RegExp(`eip155:31337 · asset ${devnetUsdc}: \\$0\\.30\\n`));
    // The default caps (no policy): what is left under the daily cap; a provider without a cap of its own says so.
    assert.match(text.stdout, /^spend on \d{4}-\d{2}-\d{2} \(UTC\): \$0\.31 of \$1\.00, \$0\.69 left\n/);
    assert.match(
      text.stdout,
      /https:\/\/seller\.example {2}\$0\.30 \(no daily cap of its own\) — charged \$0\.30, reserved \$0\.00, 2 payments\n/,
    );
    assert.doesNotMatch(text.stdout, /of no cap|daily no cap/);
    const policy = join(dataDir, "policy.yaml");
    await writeFile(policy, 'perCall: "$0.50"\n');
    const uncapped = await runMain(["spend", "--policy", policy], {
      TOLLGATE_DATA_DIR: dataDir,
      DATABASE_URL: undefined,
    });
    assert.match(uncapped.stdout, /\(UTC\): \$0\.31 \(no daily cap\)\n/);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
