// `tollgate channels` reads the channels table of a gateway's ledger: each channel and the totals.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ChannelRecord } from "../src/ledger/index.js";
import { openLedger } from "../src/ledger/index.js";
import { testChannel } from "../src/ledger/testkit/channelFixtures.js";
import { runCli } from "./support/runCli.js";

const channel = (n: number, chargedAtomic: bigint): ChannelRecord =>
  testChannel(n, {
    payer: `0x${String(n).padStart(40, "a")}`,
    chargedAtomic,
    signedMaxAtomic: chargedAtomic + 500n,
    balanceAtomic: 1_000_000n,
    depositedAtomic: 1_000_000n,
    totalClaimedAtomic: chargedAtomic / 2n,
  });

test("tollgate channels --json lists every channel and the totals", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "tollgate-channels-cli-"));
  try {
    const ledger = await openLedger({ dataDir });
    for (const [n, charged] of [
      [1, 1_234n],
      [2, 5_000n],
    ] as const) {
      await ledger.channels.update(channel(n, 0n).channelId, () => ({
        next: channel(n, charged),
        result: undefined,
      }));
    }
    await ledger.close();
    const run = await runCli(["channels", "--data-dir", dataDir, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as {
      totals: {
        channels: number;
        chargedAtomic: string;
        totalClaimedAtomic: string;
        depositedAtomic: string;
      };
      channels: { payer: string; chargedAtomic: string; unclaimedAtomic: string }[];
    };
    assert.equal(out.totals.channels, 2);
    assert.equal(out.totals.chargedAtomic, "6234");
    assert.equal(out.totals.totalClaimedAtomic, String(617n + 2_500n));
    assert.equal(out.totals.depositedAtomic, "2000000");
    assert.deepEqual(
      out.channels.map((c) => c.unclaimedAtomic),
      ["617", "2500"],
    );
    const text = await runCli(["channels", "--data-dir", dataDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /Payment channels \(2\)/);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
