// Child process of `createChargeJournal.test.ts`: opens the PGlite ledger in the data dir given, stores a
// channel, charges a JSON voucher request on it, and SIGKILLs itself the moment the charge returns, as a
// gateway killed right after its answer went out would be.
import { openLedger } from "../openLedger.js";
import { channelRowWrite } from "../paymentRowWrites.js";
import { journalTestChannel, journalTestCharge } from "./channelFixtures.js";

const [dataDir] = process.argv.slice(2);
if (!dataDir) throw new Error("usage: chargeThenKill.ts DATA_DIR");
const ledger = await openLedger({ dataDir });
const channel = journalTestChannel();
await ledger.channels.update(channel.channelId, () => ({ next: channel, result: undefined }));
await ledger.channels.update(channel.channelId, (current) => {
  const { next, paymentId, outcome, claim } = journalTestCharge(current!);
  return { next, result: undefined, alsoWrite: channelRowWrite(paymentId, outcome, claim) };
});
process.kill(process.pid, "SIGKILL");
