import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { costAtomic } from "../../src/pricing/index.js";
import { type GatewayHarness, startGatewayHarness, testPrices } from "../support/gatewayHarness.js";
import { defaultMockBackendControls, type MockBackendControls, mockModelId } from "../support/mockBackend.js";
import { finalRow, payFor, sseEvents } from "../support/paidRequests.js";
import { quick } from "./support/reliabilityEnv.js";

// Every case pays for real on the devnet. Per case: what the buyer received (counted exactly: the mock's
// words are one o200k token each and the model is priced with o200k_base), what it was charged, and the
// quote. Buyer loss: charged above the cost of what was received. Seller loss: tokens received beyond
// those charged, or output served with nothing settled.

const rounds = quick ? 1 : 4;
const price = { ...testPrices, maxOutputTokens: 256 };

type Case = {
  name: string;
  party: "backend" | "buyer";
  controls?: Partial<MockBackendControls>;
  body?: Record<string, unknown>;
  bends?: Parameters<typeof payFor>[4];
  /** The buyer hangs up after this many content chunks. */
  hangUpAfter?: number;
};

const cases: Case[] = [
  {
    name: "ignores the limit (stream)",
    party: "backend",
    controls: { ignoreOutputLimit: true, responseTokens: 120 },
  },
  {
    name: "ignores the limit (JSON)",
    party: "backend",
    controls: { ignoreOutputLimit: true, responseTokens: 120 },
    body: { stream: false },
  },
  {
    name: "ignores n and the limit",
    party: "backend",
    controls: { ignoreOutputLimit: true, responseTokens: 60 },
    body: { n: 3 },
  },
  {
    name: "inflates usage",
    party: "backend",
    controls: { usageOverride: { completion_tokens: 5_000, prompt_tokens: 90_000 } },
  },
  { name: "reports 0 output", party: "backend", controls: { usageOverride: { completion_tokens: 0 } } },
  { name: "reports no prompt usage", party: "backend", controls: { reportPromptUsage: false } },
  { name: "reports no usage", party: "backend", controls: { reportUsage: false } },
  { name: "200 not JSON", party: "backend", controls: { garbage: "non_json_200" }, body: { stream: false } },
  {
    name: "200 error object",
    party: "backend",
    controls: { garbage: "error_object_200" },
    body: { stream: false },
  },
  { name: "error as first event", party: "backend", controls: { garbage: "error_first_event" } },
  {
    name: "error after 3 chunks",
    party: "backend",
    controls: { garbage: "error_after_chunks", errorAfterChunks: 3 },
  },
  { name: "malformed SSE lines", party: "backend", controls: { garbage: "malformed_sse_lines" } },
  { name: "stalls mid-stream", party: "backend", controls: { stallAfterChunks: 4 } },
  {
    name: "stalls before headers",
    party: "backend",
    controls: { stallBeforeHeaders: true },
    body: { stream: false },
  },
  {
    name: "signs 20× the maximum",
    party: "buyer",
    controls: { ignoreOutputLimit: true, responseTokens: 100 },
    bends: { amountAtomic: 10n ** 7n },
  },
  { name: "deadline 10 s away", party: "buyer", bends: { deadlineSeconds: 10 } },
  // Paced at 50 ms a token: the two chunks allowed in flight (written to the buyer's socket after it
  // stopped reading, before the gateway saw it leave) are 100 ms of a loaded machine's delay.
  { name: "hangs up after 5 chunks", party: "buyer", controls: { tokensPerSecond: 20 }, hangUpAfter: 5 },
];

type Figures = {
  cases: number;
  chargedAtomic: bigint;
  deliveredCostAtomic: bigint;
  buyerLossAtomic: bigint;
  sellerLostTokens: number;
  unpaidServed: number;
};

let devnet: Devnet;
let h: GatewayHarness;

before(async () => {
  devnet = await startDevnet({ buyers: 8 });
  h = await startGatewayHarness({
    devnet,
    model: { tokenizer: "o200k_base", maxOutputTokens: 256 },
    configure: (input) => ({
      ...input,
      models: input.models.map((model) => ({ ...model, backend: { ...model.backend, timeoutMs: 3_000 } })),
    }),
  });
});
after(async () => {
  await h?.close();
  await devnet?.stop();
});

/** Content tokens a buyer received in a stream or a JSON answer (one token per mock word). */
function receivedTokens(text: string, streamed: boolean): number {
  const count = (content: string) => content.split(/(?=\s)/).filter((word) => word.length > 0).length;
  if (!streamed) {
    try {
      const json = JSON.parse(text) as { choices?: Array<{ message?: { content?: string } }> };
      return (json.choices ?? []).reduce((sum, choice) => sum + count(choice.message?.content ?? ""), 0);
    } catch {
      return 0;
    }
  }
  return sseEvents(text).reduce((sum, event) => {
    const choices = (event.json?.choices ?? []) as Array<{ delta?: { content?: string } }>;
    return sum + choices.reduce((inner, choice) => inner + count(choice.delta?.content ?? ""), 0);
  }, 0);
}

describe("hostile parties: nobody loses money", () => {
  for (const party of ["backend", "buyer"] as const) {
    test(`a hostile ${party}: charged ≤ quote and ≤ cost of what was delivered; every delivered token paid`, async (t) => {
      const figures: Figures = {
        cases: 0,
        chargedAtomic: 0n,
        deliveredCostAtomic: 0n,
        buyerLossAtomic: 0n,
        sellerLostTokens: 0,
        unpaidServed: 0,
      };
      let account = party === "backend" ? 0 : 4;
      for (let round = 0; round < rounds; round++) {
        for (const hostile of cases.filter((candidate) => candidate.party === party)) {
          h.backend.set({ ...defaultMockBackendControls, responseTokens: 20, ...hostile.controls });
          const payer = devnet.accounts.buyers[(account++ % 4) + (party === "backend" ? 0 : 4)]!;
          const streamed = hostile.body?.stream !== false;
          const body = {
            model: mockModelId,
            messages: [{ role: "user", content: "write twenty words about a fox" }],
            max_tokens: 20,
            stream: streamed,
            ...hostile.body,
          };
          const balanceBefore = await devnet.usdcBalance(payer.address);
          const { response, offeredAtomic } = await payFor(
            h,
            "/v1/chat/completions",
            body,
            payer.privateKey,
            hostile.bends,
          );
          let text = "";
          if (hostile.hangUpAfter !== undefined && response.body) {
            const reader = response.body.getReader();
            while (receivedTokens(text, true) < hostile.hangUpAfter) {
              const next = await reader.read();
              if (next.done) break;
              text += new TextDecoder().decode(next.value);
            }
            await reader.cancel();
          } else text = await response.text();
          await h.backend.whenIdle();
          // A buyer that hangs up leaves the chunks already written to its socket unread: they were delivered.
          const inFlight = hostile.hangUpAfter !== undefined ? 2 : 0;
          const delivered = response.status === 200 ? receivedTokens(text, streamed) + inFlight : 0;
          const row = response.status === 402 ? undefined : await finalRow(h);
          const charged = row?.chargeAtomic ?? 0n;
          const paidTokens = row?.completionTokens ?? 0;
          const deliveredCost =
            delivered === 0
              ? 0n
              : costAtomic({ promptTokens: row?.promptTokens ?? 0, completionTokens: delivered }, price);
          const label = `${hostile.name} (round ${round})`;
          assert.ok(charged <= offeredAtomic, `${label}: charged ${charged} > quote ${offeredAtomic}`);
          assert.ok(
            charged <= deliveredCost,
            `${label}: charged ${charged} > cost of delivered ${deliveredCost}`,
          );
          assert.equal(
            await devnet.usdcBalance(payer.address),
            balanceBefore - charged,
            `${label}: chain = ledger`,
          );
          figures.cases++;
          figures.chargedAtomic += charged;
          figures.deliveredCostAtomic += deliveredCost;
          figures.buyerLossAtomic += charged > deliveredCost ? charged - deliveredCost : 0n;
          figures.sellerLostTokens += Math.max(0, delivered - inFlight - paidTokens);
          if (delivered > 0 && row?.status !== "settled") figures.unpaidServed++;
          t.diagnostic(
            `${label}: status ${response.status}, delivered ${delivered} tokens, charged for ${paidTokens}, ${charged} of ${offeredAtomic} quoted`,
          );
        }
      }
      t.diagnostic(
        `hostile ${party}: ${figures.cases} cases · charged ${figures.chargedAtomic} atomic vs cost of delivered ${figures.deliveredCostAtomic} · buyer loss ${figures.buyerLossAtomic} · seller loss ${figures.sellerLostTokens} tokens, ${figures.unpaidServed} served unpaid`,
      );
      assert.equal(figures.buyerLossAtomic, 0n, "buyer loss");
      assert.equal(figures.sellerLostTokens, 0, "seller loss: tokens delivered and not charged");
      assert.equal(figures.unpaidServed, 0, "seller loss: served with nothing settled");
    });
  }
});
