import assert from "node:assert/strict";
import { rm, symlink } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import {
  createAuthorizationChecker,
  createPayingFetch,
  openSpendStore,
  type PayingFetch,
  resolveLapsedReservations,
} from "../src/buyer/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { chatRequest, eventLog, tempDataDir } from "./support/buyerFixtures.js";
import { withChainPast } from "./support/chainTime.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";

let h: GatewayHarness;
const dirs: Array<Awaited<ReturnType<typeof tempDataDir>>> = [];
const opened: PayingFetch[] = [];

before(async () => {
  h = await startGatewayHarness();
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  await h?.close();
  for (const dir of dirs) await dir.remove();
});

async function newDataDir(): Promise<string> {
  const dir = await tempDataDir();
  dirs.push(dir);
  return dir.path;
}

function buyerFetch(options: Parameters<typeof createPayingFetch>[0]): PayingFetch {
  const payingFetch = createPayingFetch(options);
  opened.push(payingFetch);
  return payingFetch;
}

const postChat = (payingFetch: typeof fetch) =>
  payingFetch(`${h.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: chatRequest(),
  });

/** The maximum the gateway asks for `chatRequest()`, read from a refusal (nothing is signed). */
async function maximumOfChatRequest(): Promise<bigint> {
  const probe = buyerFetch({
    privateKey: h.devnet.accounts.buyers[0]!.privateKey,
    dataDir: "memory://",
    policy: { perCall: "1" },
  });
  try {
    await postChat(probe);
  } catch (error) {
    if (isTollgateError(error, "TOLLGATE_POLICY_REFUSED")) return error.details.askedAtomic as bigint;
    throw error;
  }
  throw new Error("expected a refusal");
}

describe("daily caps", () => {
  test("two concurrent calls that together pass the daily cap: one proceeds, one is refused", async () => {
    const maxAtomic = await maximumOfChatRequest();
    const buyer = h.devnet.accounts.buyers[0]!;
    const log = eventLog();
    const payingFetch = buyerFetch({
      privateKey: buyer.privateKey,
      dataDir: await newDataDir(),
      policy: { daily: (maxAtomic + maxAtomic / 2n).toString() },
      onEvent: log.onEvent,
    });
    const balanceBefore = await h.devnet.usdcBalance(buyer.address);
    const outcomes = await Promise.allSettled([postChat(payingFetch), postChat(payingFetch)]);
    const served = outcomes.filter((outcome) => outcome.status === "fulfilled");
    const refused = outcomes.filter((outcome) => outcome.status === "rejected");
    const reasons = refused.map((outcome) => String((outcome as PromiseRejectedResult).reason));
    assert.equal(served.length, 1, `exactly one call proceeds (${reasons.join("; ")})`);
    assert.equal(refused.length, 1);
    const error = (refused[0] as PromiseRejectedResult).reason;
    assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"), String(error));
    assert.equal(error.details.rule, "daily");
    await (served[0] as PromiseFulfilledResult<Response>).value.arrayBuffer();
    await payingFetch.idle();
    assert.equal(log.of("authorized").length, 1, "only one authorization was signed");
    const [receipt] = log.of("receipt");
    assert.equal(await h.devnet.usdcBalance(buyer.address), balanceBefore - receipt!.chargedAtomic);
  });

  test("two paying fetches on one data directory named through a symlink share one store: the daily cap binds them together", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    const dataDir = await newDataDir();
    const alias = `${dataDir}-alias`;
    await symlink(dataDir, alias);
    dirs.push({ path: alias, remove: () => rm(alias, { force: true }) });
    const log = eventLog();
    const first = buyerFetch({ privateKey: buyer.privateKey, dataDir, onEvent: log.onEvent });
    // Both open before anything is paid, as an SDK and an MCP tool payer of one agent would.
    await first.spendStore();
    const aliased = await buyerFetch({ privateKey: buyer.privateKey, dataDir: alias }).spendStore();
    const paid = await postChat(first);
    assert.equal(paid.status, 200);
    await paid.arrayBuffer();
    await first.idle();
    const [receipt] = log.of("receipt");
    assert.equal(
      (await aliased.daySpend()).countedAtomic,
      receipt!.chargedAtomic,
      "the alias sees the charge",
    );
    // One atomic unit short of the charge already spent plus this request's maximum.
    const second = buyerFetch({
      privateKey: buyer.privateKey,
      dataDir: alias,
      policy: { daily: (receipt!.chargedAtomic + receipt!.maxAtomic - 1n).toString() },
      onEvent: log.onEvent,
    });
    await assert.rejects(postChat(second), (error: unknown) => {
      // Observed before: the alias opened a second store on the same directory, which saw nothing spent.
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"), String(error));
      assert.equal(error.details.rule, "daily");
      assert.equal(error.details.spentAtomic, receipt!.chargedAtomic);
      return true;
    });
    assert.equal(log.of("authorized").length, 1);
  });

  test("twenty concurrent reservations never pass the cap together", async () => {
    const store = await openSpendStore({ dataDir: await newDataDir() });
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, index) =>
          store.reserve({
            origin: "https://seller.example",
            url: `https://seller.example/v1/chat/completions#${index}`,
            payer: "0x0000000000000000000000000000000000000001",
            scheme: "upto",
            network: "eip155:31337",
            asset: "0x0000000000000000000000000000000000000002",
            payTo: "0x0000000000000000000000000000000000000003",
            maxAtomic: 300n,
            dailyAtomic: 1_000n,
          }),
        ),
      );
      assert.equal(
        results.filter((result) => result.ok).length,
        3,
        "3 × 300 fit under 1,000; a fourth would not",
      );
      assert.equal((await store.daySpend()).countedAtomic, 900n);
    } finally {
      await store.close();
    }
  });

  test("caps survive a restart: a new process on the same data directory counts what was spent", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const dataDir = await newDataDir();
    const first = eventLog();
    const before = createPayingFetch({ privateKey: buyer.privateKey, dataDir, onEvent: first.onEvent });
    await (await postChat(before)).arrayBuffer();
    await before.close();
    const [receipt] = first.of("receipt");
    assert.ok(receipt);
    const { chargedAtomic, maxAtomic } = receipt;

    // One atomic unit short of the charge already spent plus this request's maximum.
    const tight = createPayingFetch({
      privateKey: buyer.privateKey,
      dataDir,
      policy: { daily: (chargedAtomic + maxAtomic - 1n).toString() },
    });
    await assert.rejects(postChat(tight), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"));
      assert.equal(error.details.rule, "daily");
      assert.equal(error.details.spentAtomic, chargedAtomic, "the restart counted the settled charge");
      return true;
    });
    await tight.close();

    const exact = createPayingFetch({
      privateKey: buyer.privateKey,
      dataDir,
      policy: { daily: (chargedAtomic + maxAtomic).toString() },
    });
    const response = await postChat(exact);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    await exact.close();
  });
});

describe("reservations without a receipt", () => {
  test("a failed request keeps its maximum reserved until the deadline, then the chain check frees it", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    const log = eventLog();
    const store = await openSpendStore({ dataDir: await newDataDir() });
    const payingFetch = buyerFetch({ privateKey: buyer.privateKey, store, onEvent: log.onEvent });
    h.backend.set({ failBeforeOutput: true });
    try {
      const response = await postChat(payingFetch);
      assert.equal(response.status, 500);
      await response.arrayBuffer();
    } finally {
      h.backend.set({ failBeforeOutput: false });
    }
    const [unreceipted] = log.of("unreceipted");
    assert.ok(unreceipted, "no receipt came back");
    const row = await store.reservation(unreceipted.paymentId);
    assert.equal(row?.status, "reserved");
    assert.equal(row?.countedAtomic, row?.maxAtomic, "the maximum stays counted");
    assert.ok(row?.deadline && row.deadline > new Date(), "until a deadline in the future");

    const checker = createAuthorizationChecker(h.devnet.rpcUrl);
    assert.equal(await resolveLapsedReservations({ store, checker }), 0, "not before the deadline");
    // A buyer whose clock runs two minutes past the deadline while the chain's has not reached it:
    // the seller can still settle it, so the maximum stays counted.
    const later = new Date(row!.deadline!.getTime() + 120_000);
    assert.equal(
      await resolveLapsedReservations({ store, checker, now: later }),
      0,
      "not before the chain's clock passes the deadline",
    );
    assert.equal((await store.reservation(unreceipted.paymentId))?.status, "reserved");
    const freedCount = await withChainPast(h.devnet, row!.deadline!, () =>
      resolveLapsedReservations({ store, checker, now: later }),
    );
    assert.equal(freedCount, 1, "freed once the chain's clock passed the deadline");
    const freed = await store.reservation(unreceipted.paymentId);
    assert.equal(freed?.status, "expired");
    assert.equal(freed?.countedAtomic, 0n);
    await store.close();
  });

  test("a lapsed reservation whose nonce was spent on chain stays counted", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    const log = eventLog();
    const store = await openSpendStore({ dataDir: await newDataDir() });
    const payingFetch = buyerFetch({ privateKey: buyer.privateKey, store, onEvent: log.onEvent });
    await (await postChat(payingFetch)).arrayBuffer();
    const [receipt] = log.of("receipt");
    const row = await store.reservation(receipt!.paymentId);
    // Pretend the receipt never arrived: a second reservation carrying the settled nonce.
    const ghost = await store.reserve({ ...row!, maxAtomic: row!.maxAtomic, url: row!.url });
    assert.ok(ghost.ok);
    await store.authorize(ghost.id, { nonce: row!.nonce, deadline: new Date(Date.now() - 3_600_000) });
    const checker = createAuthorizationChecker(h.devnet.rpcUrl);
    assert.equal(await resolveLapsedReservations({ store, checker }), 0);
    const kept = await store.reservation(ghost.id);
    assert.equal(kept?.status, "settled");
    assert.equal(kept?.countedAtomic, row!.maxAtomic);
    await store.close();
  });
});
