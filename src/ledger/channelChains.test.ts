import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { ChannelChain, ChannelRecord } from "./ChannelLedger.js";
import { createLedger, type Ledger } from "./createLedger.js";
import { createPgliteClient } from "./createPgliteClient.js";
import { testChannel } from "./testkit/channelFixtures.js";

const ledgers: Ledger[] = [];
after(async () => {
  for (const ledger of ledgers) await ledger.close();
});

async function memoryLedger(): Promise<Ledger> {
  const ledger = await createLedger(await createPgliteClient({ dataDir: "memory://" }));
  ledgers.push(ledger);
  return ledger;
}

const network = "eip155:31337";
const chain = (n: number, genesisAt = new Date(0)): ChannelChain => ({
  network,
  genesisHash: `0x${String(n).padStart(64, "0")}`,
  genesisAt,
});

const channel = (n: number, chargedAtomic: bigint): ChannelRecord =>
  testChannel(n, { network, chargedAtomic, signedMaxAtomic: chargedAtomic + 500n });

const write = (ledger: Ledger, record: ChannelRecord) =>
  ledger.channels.update(record.channelId, () => ({ next: record, result: undefined }));

test("a restart on the same chain keeps every channel; a devnet started afresh sets the old chain's aside", async () => {
  const ledger = await memoryLedger();
  assert.deepEqual(await ledger.channels.bindChain(chain(1), { allowChange: true }), {
    kind: "bound",
    previousGenesisHash: undefined,
    adopted: 0,
    setAside: [],
  });
  await write(ledger, channel(7, 1_234n));
  assert.deepEqual(await ledger.channels.bindChain(chain(1), { allowChange: true }), { kind: "same" });
  assert.equal((await ledger.channels.get(channel(7, 0n).channelId))?.chargedAtomic, 1_234n);

  const changed = await ledger.channels.bindChain(chain(2), { allowChange: true });
  assert.equal(changed.kind, "bound");
  assert.equal(changed.kind === "bound" && changed.previousGenesisHash, chain(1).genesisHash);
  assert.equal(await ledger.channels.get(channel(7, 0n).channelId), undefined);
  assert.deepEqual(await ledger.channels.list(), []);
  const [aside] = await ledger.channels.listSetAside();
  assert.equal(aside?.channelId, channel(7, 0n).channelId);
  assert.equal(aside?.genesisHash, chain(1).genesisHash);
  assert.equal(aside?.chargedAtomic, 1_234n);
  assert.equal(await ledger.channels.boundChain(network), chain(2).genesisHash);

  // The same channel id on the new chain starts from nothing, and is recorded as the new chain's.
  await write(ledger, channel(7, 10n));
  assert.equal((await ledger.channels.get(channel(7, 0n).channelId))?.chargedAtomic, 10n);
  assert.deepEqual(await ledger.channels.bindChain(chain(2), { allowChange: true }), { kind: "same" });
  assert.equal((await ledger.channels.listSetAside()).length, 1);
});

test("a network whose block 0 cannot change refuses another chain and keeps its channels", async () => {
  const ledger = await memoryLedger();
  await ledger.channels.bindChain(chain(1), { allowChange: false });
  await write(ledger, channel(8, 99n));
  assert.deepEqual(await ledger.channels.bindChain(chain(3), { allowChange: false }), {
    kind: "refused",
    previousGenesisHash: chain(1).genesisHash,
  });
  assert.equal((await ledger.channels.get(channel(8, 0n).channelId))?.chargedAtomic, 99n);
  assert.deepEqual(await ledger.channels.listSetAside(), []);
  assert.equal(await ledger.channels.boundChain(network), chain(1).genesisHash);
});

test("rows from before chains were recorded are adopted, unless written before the chain began", async () => {
  const ledger = await memoryLedger();
  await write(ledger, channel(9, 5n));
  const earlier = await ledger.channels.bindChain(chain(4, new Date(Date.now() + 3_600_000)), {
    allowChange: false,
  });
  assert.equal(earlier.kind, "bound");
  assert.deepEqual(
    earlier.kind === "bound" && earlier.setAside.map((c) => [c.channelId, c.genesisHash, c.chargedAtomic]),
    [[channel(9, 0n).channelId, null, 5n]],
  );

  const other = await memoryLedger();
  await write(other, channel(9, 5n));
  const adopted = await other.channels.bindChain(chain(5, new Date(0)), { allowChange: false });
  assert.deepEqual(adopted, { kind: "bound", previousGenesisHash: undefined, adopted: 1, setAside: [] });
  assert.equal((await other.channels.get(channel(9, 0n).channelId))?.chargedAtomic, 5n);
});
