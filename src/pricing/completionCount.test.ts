import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { completionCount } from "./completionCount.js";

describe("completionCount", () => {
  test("is n for chat, 1 by default", () => {
    assert.equal(completionCount("chat", {}), 1);
    assert.equal(completionCount("chat", { n: 3 }), 3);
  });

  test("is max(n, best_of) per prompt for completions", () => {
    assert.equal(completionCount("completion", { prompt: "a" }), 1);
    assert.equal(completionCount("completion", { prompt: ["a", "b"], n: 2 }), 4);
    assert.equal(completionCount("completion", { prompt: "a", n: 2, best_of: 5 }), 5);
    assert.equal(completionCount("completion", { prompt: [1, 2, 3] }), 1);
    assert.equal(completionCount("completion", { prompt: [[1], [2], [3]] }), 3);
  });

  test("is 0 for embeddings", () => {
    assert.equal(completionCount("embedding", { input: ["a", "b"] }), 0);
  });

  test("refuses an n that is not a positive integer", () => {
    for (const n of [0, -1, 1.5, "2"]) {
      assert.throws(
        () => completionCount("chat", { n }),
        (error) => isTollgateError(error, "TOLLGATE_REQUEST_INVALID") && error.details.field === "n",
      );
    }
  });
});
