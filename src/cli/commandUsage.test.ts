import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_DEVNET_BUYERS } from "../devnet/index.js";
import { commandUsage } from "./commandUsage.js";

test("the devnet usage states the real buyer limit", () => {
  assert.match(commandUsage.devnet, new RegExp(`--buyers takes 1 to ${MAX_DEVNET_BUYERS} `));
});

test("every usage text starts with its own command", () => {
  for (const [name, usage] of Object.entries(commandUsage))
    assert.ok(usage.startsWith(`tollgate ${name} `), name);
});
