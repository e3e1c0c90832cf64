import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { resolveOutputLimit } from "./resolveOutputLimit.js";

describe("resolveOutputLimit", () => {
  test("uses the request's limit, capped by the model's", () => {
    assert.equal(resolveOutputLimit(256, 4096), 256);
    assert.equal(resolveOutputLimit(4096, 4096), 4096);
    assert.equal(resolveOutputLimit(100_000, 4096), 4096);
  });

  test("defaults to the model's limit when the request sets none", () => {
    assert.equal(resolveOutputLimit(undefined, 4096), 4096);
    assert.equal(resolveOutputLimit(null, 4096), 4096);
  });

  for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "256", true, 5n]) {
    test(`refuses ${typeof bad === "bigint" ? `${bad}n` : (JSON.stringify(bad) ?? String(bad))} and names the field`, () => {
      assert.throws(
        () => resolveOutputLimit(bad, 4096, { field: "max_completion_tokens" }),
        (error) =>
          isTollgateError(error, "TOLLGATE_REQUEST_INVALID") &&
          error.details.field === "max_completion_tokens" &&
          error.shortMessage.includes("max_completion_tokens"),
      );
    });
  }

  test("refuses a model limit that is not a positive integer", () => {
    assert.throws(
      () => resolveOutputLimit(1, 0),
      (error) => isTollgateError(error, "TOLLGATE_CONFIG_INVALID"),
    );
  });
});
