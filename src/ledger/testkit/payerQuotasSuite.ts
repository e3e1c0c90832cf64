import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { PayerQuotas } from "../PayerQuotas.js";
import { payerAddress } from "./ledgerHarness.js";

/**
 * The `PayerQuotas` contract, for any implementation. `second` is another process's view of the same
 * quotas (a replica on the same database), or the same object where there is only one.
 */
export function describePayerQuotas(
  name: string,
  quotasOf: () => { first: PayerQuotas; second: PayerQuotas },
): void {
  describe(`payer quotas (${name})`, () => {
    let payerNumber = 9_000 + Math.floor(Math.random() * 1_000);
    const scopeOf = (kind: "refund" | "small_deposit" | "sponsored_approval" = "refund") => ({
      kind,
      network: "eip155:31337",
      payer: payerAddress(payerNumber++).toUpperCase().replace("0X", "0x"),
    });

    test("takes uses up to the limit, then answers the uses that count, oldest first", async () => {
      const { first, second } = quotasOf();
      const scope = scopeOf();
      for (const atMs of [1_000, 2_000, 3_000])
        assert.equal((await first.take({ ...scope, limit: 3, atMs, sinceMs: 0 })).taken, true);
      const refused = await second.take({ ...scope, limit: 3, atMs: 4_000, sinceMs: 0 });
      assert.deepEqual(refused, { taken: false, usedAtMs: [1_000, 2_000, 3_000] });
      // The payer's address counts whatever its case.
      assert.deepEqual(
        await second.uses({ ...scope, payer: scope.payer.toLowerCase() }),
        [1_000, 2_000, 3_000],
      );
    });

    test("counts only the uses in the window, and each kind and network apart", async () => {
      const { first, second } = quotasOf();
      const scope = scopeOf();
      await first.take({ ...scope, limit: 2, atMs: 1_000, sinceMs: 0 });
      await first.take({ ...scope, limit: 2, atMs: 2_000, sinceMs: 0 });
      assert.equal((await second.take({ ...scope, limit: 2, atMs: 3_000, sinceMs: 0 })).taken, false);
      // Past the first use's window, one is free again.
      assert.equal((await second.take({ ...scope, limit: 2, atMs: 3_000, sinceMs: 1_000 })).taken, true);
      assert.deepEqual(await first.uses({ ...scope, sinceMs: 1_000 }), [2_000, 3_000]);
      assert.equal((await first.take({ ...scope, kind: "small_deposit", limit: 1, atMs: 5 })).taken, true);
      assert.equal((await first.take({ ...scope, network: "eip155:8453", limit: 1, atMs: 5 })).taken, true);
    });

    test("a use given back is free again", async () => {
      const { first, second } = quotasOf();
      const scope = scopeOf("sponsored_approval");
      const taken = await first.take({ ...scope, limit: 1, atMs: 1 });
      assert.ok(taken.taken);
      assert.equal((await second.take({ ...scope, limit: 1, atMs: 2 })).taken, false);
      await second.giveBack(taken.id);
      assert.equal((await second.take({ ...scope, limit: 1, atMs: 3 })).taken, true);
    });

    test("twenty takes of one payer at once, from both sides, take exactly the limit", async () => {
      const { first, second } = quotasOf();
      const scope = scopeOf();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, n) =>
          (n % 2 === 0 ? first : second).take({ ...scope, limit: 3, atMs: 1_000 + n, sinceMs: 0 }),
        ),
      );
      assert.equal(results.filter((result) => result.taken).length, 3);
      assert.equal((await first.uses(scope)).length, 3);
    });
  });
}
