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

test("a pool slot's lease: one holder at a time, renewed by its holder, taken over once it lapses", async () => {
  const store = await openSpendStore({ dataDir: "memory://" });
  try {
    const pool = "0xaa|eip155:31337|seller";
    assert.equal(await store.leaseChannelSlot(pool, 0, "first", 60_000), true);
    assert.equal(await store.leaseChannelSlot(pool, 0, "second", 60_000), false, "held by another");
    assert.equal(await store.leaseChannelSlot(pool, 1, "second", 60_000), true, "another slot is free");
    assert.equal(await store.renewChannelSlot(pool, 0, "first", 60_000), true);
    await store.releaseChannelSlot(pool, 0, "second");
    assert.equal(
      await store.leaseChannelSlot(pool, 0, "second", 60_000),
      false,
      "only its holder gives a lease back",
    );
    await store.releaseChannelSlot(pool, 0, "first");
    assert.equal(await store.leaseChannelSlot(pool, 0, "second", 1), true, "given back: free");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(
      await store.leaseChannelSlot(pool, 0, "third", 60_000),
      true,
      "a lapsed lease is taken over",
    );
    assert.equal(await store.renewChannelSlot(pool, 0, "second", 60_000), false, "the lapsed holder lost it");
  } finally {
    await store.close();
  }
});

test("a planned opening counts for others while its slot's lease is held: not for its own holder, not once given back or lapsed", async () => {
  const store = await openSpendStore({ dataDir: "memory://" });
  try {
    const payer = "0x00000000000000000000000000000000000000AA";
    const pool = `${payer.toLowerCase()}|eip155:31337|seller`;
    const opening = { payer, origin: "http://127.0.0.1:4021", channelId, amountAtomic: 5_000n };
    const others = (exceptHolder: string, origin?: string) =>
      store.plannedOpenings({ payer: payer.toLowerCase(), origin, exceptHolder });
    assert.equal(await store.leaseChannelSlot(pool, 0, "first", 60_000), true);
    await store.planOpening({ poolKey: pool, slot: 0, holder: "first" }, opening);
    assert.deepEqual(await others("second"), [
      { origin: opening.origin, channelId: channelId.toLowerCase(), amountAtomic: 5_000n },
    ]);
    assert.deepEqual(await others("second", "http://127.0.0.1:9999"), [], "another provider's");
    assert.deepEqual(await others("first"), [], "the holder counts its own in memory");
    assert.deepEqual(
      await store.plannedOpenings({ payer: "0xbb", exceptHolder: "second" }),
      [],
      "another payer's",
    );
    await store.planOpening({ poolKey: pool, slot: 0, holder: "first" }, undefined);
    assert.deepEqual(await others("second"), [], "forgotten");
    await store.planOpening({ poolKey: pool, slot: 0, holder: "first" }, opening);
    await store.releaseChannelSlot(pool, 0, "first");
    assert.deepEqual(await others("second"), [], "given back with its slot");
    // A process that crashed: its lease lapses, and its plan stops counting.
    assert.equal(await store.leaseChannelSlot(pool, 1, "crashed", 1), true);
    await store.planOpening({ poolKey: pool, slot: 1, holder: "crashed" }, opening);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(await others("second"), [], "lapsed with its lease");
  } finally {
    await store.close();
  }
});

test("vouchers without receipts are settled from the channel's cumulative, each at the next base minus its own", async () => {
  const store = await openSpendStore({ dataDir: "memory://" });
  try {
    const voucher = async (baseAtomic: bigint) => {
      const reserved = await store.reserve({
        origin: "http://127.0.0.1:4021",
        url: "http://127.0.0.1:4021/v1/chat/completions",
        payer: "0x00000000000000000000000000000000000000aa",
        scheme: "batch-settlement",
        network: "eip155:31337",
        asset: "0x00000000000000000000000000000000000000bb",
        payTo: "0x00000000000000000000000000000000000000cc",
        maxAtomic: 500n,
      });
      assert.ok(reserved.ok);
      await store.authorize(reserved.id, { channelId, channelBaseAtomic: baseAtomic });
      return reserved.id;
    };
    const lost = await voucher(1000n);
    const alsoLost = await voucher(1200n);
    const inFlight = await voucher(1300n);
    assert.deepEqual(
      await store.reconcileChannelVouchers(channelId, 1100n, { except: inFlight }),
      [],
      "does not add up",
    );
    assert.equal((await store.reservation(lost))?.status, "reserved");
    const settled = await store.reconcileChannelVouchers(channelId, 1300n, { except: inFlight });
    assert.deepEqual(
      settled.map((entry) => [entry.id, entry.chargedAtomic]),
      [
        [lost, 200n],
        [alsoLost, 100n],
      ],
    );
    assert.equal((await store.reservation(lost))?.countedAtomic, 200n);
    assert.equal(
      (await store.reservation(inFlight))?.status,
      "reserved",
      "the request in flight is left alone",
    );
    assert.equal((await store.daySpend()).countedAtomic, 200n + 100n + 500n);
    // A cumulative that would charge a voucher more than its maximum does not add up either.
    const overMax = await voucher(1300n);
    assert.deepEqual(await store.reconcileChannelVouchers(channelId, 1300n + 501n, { except: inFlight }), []);
    assert.equal((await store.reservation(overMax))?.status, "reserved", "still counted at its maximum");
  } finally {
    await store.close();
  }
});
