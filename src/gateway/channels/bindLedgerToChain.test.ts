import assert from "node:assert/strict";
import { after, test } from "node:test";
import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import { type Address, createPublicClient, http, type PublicClient } from "viem";
import { launchAnvil } from "../../devnet/launchAnvil.js";
import { isTollgateError } from "../../errors/index.js";
import { createLedger, createPgliteClient, type Ledger } from "../../ledger/index.js";
import { captureLogger } from "../../ledger/testkit/captureLogger.js";
import { testChannel } from "../../ledger/testkit/channelFixtures.js";
import { bindLedgerToChain } from "./bindLedgerToChain.js";
import { reconcileChannels } from "./reconcileChannels.js";

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

let lastGenesisSecond = 0n;
/**
 * A fresh anvil. Its block 0 follows from its start second and settings, so two started within one second
 * would be one chain: each is started in a second of its own.
 */
async function anvil(chainId: number): Promise<PublicClient> {
  while (BigInt(Math.floor(Date.now() / 1000)) <= lastGenesisSecond)
    await new Promise((resolve) => setTimeout(resolve, 50));
  const node = await launchAnvil({ chainId });
  closers.push(() => node.stop());
  const client = createPublicClient({ transport: http(node.rpcUrl) }) as unknown as PublicClient;
  lastGenesisSecond = (await client.getBlock({ blockNumber: 0n })).timestamp;
  return client;
}

async function memoryLedger(): Promise<Ledger> {
  const ledger = await createLedger(await createPgliteClient({ dataDir: "memory://" }));
  closers.push(() => ledger.close());
  return ledger;
}

/** Gives the ledger a channel with something charged on it, on whatever chain its channels are bound to. */
async function chargeChannel(ledger: Ledger, network: string, chargedAtomic: bigint): Promise<`0x${string}`> {
  const record = testChannel(0xab, {
    network,
    receiver: `0x${"bb".repeat(20)}`,
    token: `0x${"cc".repeat(20)}`,
    chargedAtomic,
    signedMaxAtomic: chargedAtomic,
  });
  await ledger.channels.update(record.channelId, () => ({ next: record, result: undefined }));
  return record.channelId;
}

test("on the devnet's chain id, a new chain sets the old chain's channels aside and says so", async () => {
  const ledger = await memoryLedger();
  const { logger, records } = captureLogger();
  const network = "eip155:31337";
  await bindLedgerToChain({ channels: ledger.channels, chain: await anvil(31337), network, logger });
  const channelId = await chargeChannel(ledger, network, 4_321n);
  const second = await anvil(31337);
  await bindLedgerToChain({ channels: ledger.channels, chain: second, network, logger });
  assert.equal(await ledger.channels.get(channelId), undefined);
  assert.deepEqual(
    (await ledger.channels.listSetAside()).map((c) => [c.channelId, c.chargedAtomic]),
    [[channelId, 4_321n]],
  );
  const warning = records.find((record) => record.level === 40);
  assert.match(String(warning?.msg), /1 channel\(s\) of an earlier chain set aside/);
  // Started again on that chain: nothing more is set aside.
  await chargeChannel(ledger, network, 7n);
  await bindLedgerToChain({ channels: ledger.channels, chain: second, network, logger });
  assert.equal((await ledger.channels.get(channelId))?.chargedAtomic, 7n);
  assert.equal((await ledger.channels.listSetAside()).length, 1);

  // Reconciling against yet another devnet, before any gateway ran on it, compares none of these channels.
  const third = await anvil(31337);
  const reconciled = await reconcileChannels({
    channels: ledger.channels,
    payments: ledger.payments,
    client: third,
    settlement: BATCH_SETTLEMENT_ADDRESS as Address,
    network,
    asset: `0x${"cc".repeat(20)}`,
    payTo: `0x${"bb".repeat(20)}`,
  });
  assert.equal(reconciled.channelCount, 0);
  assert.deepEqual(reconciled.differences, []);
  assert.equal(reconciled.otherChain?.ledgerGenesisHash, await ledger.channels.boundChain(network));
  assert.equal(reconciled.otherChain?.chainGenesisHash, (await third.getBlock({ blockNumber: 0n })).hash);
});

test("on any other network, an rpcUrl serving another chain is refused and the channels are kept", async () => {
  const ledger = await memoryLedger();
  const network = "eip155:137";
  const { logger } = captureLogger();
  await bindLedgerToChain({ channels: ledger.channels, chain: await anvil(137), network, logger });
  const channelId = await chargeChannel(ledger, network, 99n);
  await assert.rejects(
    bindLedgerToChain({ channels: ledger.channels, chain: await anvil(137), network, logger }),
    (error: unknown) =>
      isTollgateError(error) &&
      error.code === "TOLLGATE_CONFIG_INVALID" &&
      /config key rpcUrl: it serves a chain whose block 0 is 0x[0-9a-f]{64}, but this ledger's eip155:137 channels were recorded on the chain whose block 0 is 0x[0-9a-f]{64}; point rpcUrl at eip155:137/.test(
        error.message,
      ),
  );
  assert.equal((await ledger.channels.get(channelId))?.chargedAtomic, 99n);
  assert.deepEqual(await ledger.channels.listSetAside(), []);
});
