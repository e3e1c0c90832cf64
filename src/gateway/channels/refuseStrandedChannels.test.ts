import assert from "node:assert/strict";
import { after, test } from "node:test";
import { isTollgateError } from "../../errors/index.js";
import { createLedger, createPgliteClient, type Ledger } from "../../ledger/index.js";
import { type TestChannelOverrides, testChannel } from "../../ledger/testkit/channelFixtures.js";
import { refuseStrandedChannels } from "./refuseStrandedChannels.js";

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

const network = "eip155:84532";
const payTo = `0x${"bb".repeat(20)}` as const;
const usdc = `0x${"cc".repeat(20)}` as const;
const authorizer = `0x${"dd".repeat(20)}` as const;

async function ledgerWith(
  ...changes: Array<TestChannelOverrides & { withdrawDelay?: number }>
): Promise<Ledger> {
  const ledger = await createLedger(await createPgliteClient({ dataDir: "memory://" }));
  closers.push(() => ledger.close());
  for (const [i, change] of changes.entries()) {
    const { withdrawDelay = 86_400, config, ...fields } = change;
    const record = testChannel(i + 1, {
      network,
      payer: `0x${"aa".repeat(20)}`,
      receiver: payTo,
      token: usdc,
      signature: "0x01",
      balanceAtomic: 1_000_000n,
      depositedAtomic: 1_000_000n,
      onchainSyncedAt: Date.now(),
      lastRequestAt: Date.now(),
      ...fields,
      signedMaxAtomic: fields.chargedAtomic ?? 0n,
      config: { receiverAuthorizer: authorizer, withdrawDelay, ...config },
    });
    await ledger.channels.update(record.channelId, () => ({ next: record, result: undefined }));
  }
  return ledger;
}

const check = (ledger: Ledger, overrides: { claimIntervalSeconds?: number; receiver?: string } = {}) =>
  refuseStrandedChannels({
    channels: ledger.channels,
    network,
    receiver: overrides.receiver ?? payTo,
    token: usdc,
    claims: { receiverAuthorizer: authorizer, claimIntervalSeconds: overrides.claimIntervalSeconds ?? 300 },
  });

const refusedFor = (pattern: RegExp) => (error: unknown) =>
  isTollgateError(error, "TOLLGATE_CONFIG_INVALID") && pattern.test(error.shortMessage);

test("a config whose payTo, asset or receiver-authorizer no longer matches a channel with money on it is refused, naming it; settled channels and other networks do not count", async () => {
  const otherPayTo = `0x${"ee".repeat(20)}` as const;
  const ledger = await ledgerWith(
    { chargedAtomic: 700n, totalClaimedAtomic: 200n, settledAtomic: 200n },
    { chargedAtomic: 500n, totalClaimedAtomic: 500n, settledAtomic: 500n, receiver: otherPayTo },
    { chargedAtomic: 900n, network: "eip155:8453", receiver: otherPayTo },
  );
  // The other network's channel is not this gateway's to claim: it is told, with what it holds.
  assert.deepEqual(await check(ledger), [{ network: "eip155:8453", channels: 1, owedAtomic: 900n }]);
  await assert.rejects(
    check(ledger, { receiver: otherPayTo }),
    refusedFor(
      /channel 0x0{63}1 holds \$0\.0005 charged and not claimed, paying payTo 0xbbbb.* which this config no longer has/,
    ),
    "charges on the earlier payTo would never be claimed",
  );

  const claimedOnly = await ledgerWith({
    chargedAtomic: 400n,
    totalClaimedAtomic: 400n,
    settledAtomic: 100n,
  });
  await assert.rejects(check(claimedOnly, { receiver: otherPayTo }), refusedFor(/claimed and not settled/));

  const otherAuthorizer = await ledgerWith({
    chargedAtomic: 10n,
    config: { receiverAuthorizer: `0x${"12".repeat(20)}` },
  });
  await assert.rejects(check(otherAuthorizer), refusedFor(/receiver-authorizer 0x1212/));
  const otherToken = await ledgerWith({ chargedAtomic: 10n, token: `0x${"34".repeat(20)}` });
  await assert.rejects(check(otherToken), refusedFor(/asset 0x3434/));
});

test("a claim interval that lets a channel's payer withdraw its unclaimed charges between two rounds is refused", async () => {
  const ledger = await ledgerWith({ chargedAtomic: 10n, withdrawDelay: 900 });
  await check(ledger, { claimIntervalSeconds: 300 });
  await assert.rejects(
    check(ledger, { claimIntervalSeconds: 3_600 }),
    refusedFor(
      /withdrawal delay \(900 s\) is shorter than three claim intervals \(claimIntervalSeconds 3600\)/,
    ),
  );
  const claimed = await ledgerWith({
    chargedAtomic: 10n,
    totalClaimedAtomic: 10n,
    settledAtomic: 10n,
    withdrawDelay: 900,
  });
  await check(claimed, { claimIntervalSeconds: 3_600 });
});

test("a short channel (its payer withdrew before the claims) is a debt, not claimable money: it holds no restart back unless claims on it wait to be settled", async () => {
  const otherPayTo = `0x${"ee".repeat(20)}`;
  const short = { chargedAtomic: 500n, balanceAtomic: 300n, totalClaimedAtomic: 300n };
  await check(await ledgerWith({ ...short, settledAtomic: 300n }), { receiver: otherPayTo });
  await assert.rejects(
    check(await ledgerWith({ ...short, settledAtomic: 0n }), { receiver: otherPayTo }),
    refusedFor(/claimed and not settled/),
  );
});
