import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openSpendStore } from "./openSpendStore.js";
import { spendChannelStorage } from "./spendChannelStorage.js";

const channelId = `0x${"ab".repeat(32)}`;

test("a channel's client record survives closing and reopening the spend store", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "tollgate-channels-"));
  try {
    const first = await openSpendStore({ dataDir });
    await first.recordChannel({
      channelId,
      payer: "0x00000000000000000000000000000000000000AA",
      origin: "http://127.0.0.1:4021",
      url: "http://127.0.0.1:4021/v1/chat/completions",
      network: "eip155:31337",
      asset: "0x00000000000000000000000000000000000000BB",
      payTo: "0x00000000000000000000000000000000000000CC",
      receiverAuthorizer: "0x00000000000000000000000000000000000000DD",
      withdrawDelay: 900,
      salt: `0x${"00".repeat(32)}`,
      slot: 0,
      config: { withdrawDelay: 900 },
    });
    const storage = spendChannelStorage(async () => first);
    // The official client keys by lower-case channel id; an upper-case key finds the same record.
    await storage.set(channelId.toUpperCase().replace("0X", "0x"), {
      balance: "5000",
      chargedCumulativeAmount: "350",
    });
    await first.recordDeposit(channelId, 5000n);
    await first.close();

    const second = await openSpendStore({ dataDir });
    try {
      const reopened = spendChannelStorage(async () => second);
      assert.deepEqual(await reopened.get(channelId), { balance: "5000", chargedCumulativeAmount: "350" });
      const [channel] = await second.channels({ payer: "0x00000000000000000000000000000000000000aa" });
      assert.equal(channel?.depositedAtomic, 5000n);
      assert.equal(channel?.deposits, 1);
      await reopened.delete(channelId);
      assert.equal(await reopened.get(channelId), undefined);
      assert.equal(
        (await second.channels()).length,
        1,
        "the channel stays listed after its record is closed",
      );
    } finally {
      await second.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
