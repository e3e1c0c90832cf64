import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { readConfigFile, resolveSecrets } from "../cli/gatewayCommand.js";
import { isTollgateError } from "../errors/index.js";
import { parseGatewayConfig } from "./gatewayConfig.js";
import { modelUnitPrices } from "./modelUnitPrices.js";

const examplePath = fileURLToPath(new URL("../../tollgate.example.yaml", import.meta.url));
const facilitatorKey = `0x${"11".repeat(32)}`;

/** An operator's copy of the example: its secrets in the environment, and payTo set to the operator's own address. */
async function exampleInput(): Promise<Record<string, unknown>> {
  return { ...(await uneditedExampleInput()), payTo: operatorPayTo };
}

const operatorPayTo = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

async function uneditedExampleInput(): Promise<Record<string, unknown>> {
  const secrets = { TOLLGATE_FACILITATOR_KEY: facilitatorKey, OPENAI_API_KEY: "sk-test" };
  const saved = Object.fromEntries(Object.keys(secrets).map((name) => [name, process.env[name]]));
  Object.assign(process.env, secrets);
  try {
    return resolveSecrets(await readConfigFile(examplePath)) as Record<string, unknown>;
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

test("tollgate.example.yaml is a valid config once its payTo is the operator's own, with the documented defaults; copied unedited, it is refused naming payTo", async () => {
  await assert.rejects(
    async () => parseGatewayConfig(await uneditedExampleInput()),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key payTo: payTo 0x0{39}1 is an address the chain keeps for its own precompiles \(the example config's placeholder is one\).*set payTo to an address you control/.test(
        error.shortMessage,
      ),
  );
  const config = parseGatewayConfig(await exampleInput());
  assert.equal(config.payTo, operatorPayTo);
  assert.equal(config.network, "eip155:80002");
  assert.deepEqual(config.timeouts, { verifySeconds: 15, settleSeconds: 90 });
  assert.ok("privateKey" in config.facilitator);
  assert.equal(config.facilitator.privateKey, facilitatorKey);
  assert.equal(config.facilitator.rpcBatch, true);
  assert.ok(config.models.length > 0);
});

test("timeouts and rpcBatch are read, and a bad value names its key", async () => {
  const input = await exampleInput();
  const config = parseGatewayConfig({
    ...input,
    facilitator: { ...(input.facilitator as object), rpcBatch: false },
    timeouts: { verifySeconds: 2.5 },
  });
  assert.deepEqual(config.timeouts, { verifySeconds: 2.5, settleSeconds: 90 });
  assert.ok("rpcBatch" in config.facilitator && config.facilitator.rpcBatch === false);
  assert.throws(
    () => parseGatewayConfig({ ...input, timeouts: { settleSeconds: -1 } }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") && /timeouts\.settleSeconds/.test(error.shortMessage),
  );
  assert.throws(
    () => parseGatewayConfig({ ...input, timeouts: { verifySeconds: 5, extra: 1 } }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") && /timeouts/.test(error.shortMessage),
  );
});

test("a maxTimeoutSeconds shorter than a model's longest generation plus the settlement margin is a config error", async () => {
  const input = await exampleInput();
  assert.throws(
    () => parseGatewayConfig({ ...input, maxTimeoutSeconds: 120 }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key maxTimeoutSeconds: 120 s is shorter than model .* longest generation/.test(
        error.shortMessage,
      ) &&
      /at least 270/.test(error.shortMessage),
  );
  const models = (input.models as Array<Record<string, unknown>>).map((model) => ({
    ...model,
    backend: { ...(model.backend as object), maxDurationSeconds: 60 },
  }));
  assert.equal(parseGatewayConfig({ ...input, models, maxTimeoutSeconds: 120 }).maxTimeoutSeconds, 120);
});

test("a withdraw delay a payer's withdrawal could outrun before a request's charge is claimed is a config error", async () => {
  const input = await exampleInput();
  const longModels = (input.models as Array<Record<string, unknown>>).map((model) => ({
    ...model,
    backend: { ...(model.backend as object), maxDurationSeconds: 600 },
  }));
  const channels = { withdrawDelaySeconds: 900, claimIntervalSeconds: 300 };
  // 300 s of trusted channel state + a 600 s request + a 300 s claim round + 60 s > 900 s.
  assert.throws(
    () => parseGatewayConfig({ ...input, maxTimeoutSeconds: 900, models: longModels, channels }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /channels\.withdrawDelaySeconds: withdrawDelaySeconds \(900\) is too short/.test(error.shortMessage) &&
      /at least 1260/.test(error.shortMessage),
  );
  const accepted = parseGatewayConfig({
    ...input,
    maxTimeoutSeconds: 900,
    models: longModels,
    channels: { ...channels, withdrawDelaySeconds: 1_260 },
  });
  assert.equal(accepted.channels?.withdrawDelaySeconds, 1_260);
  // The defaults' request length (240 s) fits the shortest delay with a 300 s claim interval.
  assert.equal(parseGatewayConfig({ ...input, channels }).channels?.withdrawDelaySeconds, 900);
});

test("a price on a unit no route meters (output_bytes) is a config error naming it, not a unit sold for nothing", async () => {
  const input = await exampleInput();
  const [first] = input.models as Record<string, unknown>[];
  assert.throws(
    () =>
      parseGatewayConfig({
        ...input,
        models: [{ ...first, prices: { input_tokens: "$1", output_tokens: "$2", output_bytes: "$5" } }],
      }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /prices\.output_bytes/.test(error.shortMessage) &&
      /would never be charged/.test(error.shortMessage),
  );
});

test("channels.receiverAuthorizerKeyEnv is read by the CLI; unread, it is a config error rather than the facilitator's key", async () => {
  const input = await exampleInput();
  const authorizerKey = `0x${"22".repeat(32)}`;
  const withEnv = { ...input, channels: { receiverAuthorizerKeyEnv: "TOLLGATE_TEST_AUTHORIZER_KEY" } };
  process.env.TOLLGATE_TEST_AUTHORIZER_KEY = authorizerKey;
  try {
    const config = parseGatewayConfig(resolveSecrets(withEnv));
    assert.equal(config.channels?.receiverAuthorizerKey, authorizerKey);
    assert.equal(config.channels?.receiverAuthorizerKeyEnv, undefined);
  } finally {
    delete process.env.TOLLGATE_TEST_AUTHORIZER_KEY;
  }
  assert.throws(
    () => resolveSecrets(withEnv),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /channels\.receiverAuthorizerKeyEnv: environment variable TOLLGATE_TEST_AUTHORIZER_KEY is not set/.test(
        error.shortMessage,
      ),
  );
  // Read without secrets (tollgate reconcile needs no key), the config stays valid; startGateway refuses it.
  assert.equal(parseGatewayConfig(withEnv).channels?.receiverAuthorizerKey, undefined);
});

/** The example config, and its first model without any price. */
async function unpricedExample() {
  const input = await exampleInput();
  const [first] = input.models as Record<string, unknown>[];
  const {
    inputPrice: _input,
    outputPrice: _output,
    fixedFee: _fee,
    ...unpriced
  } = first as Record<string, unknown>;
  return { input, unpriced };
}

test("a prices map that would sell output, or everything, for nothing is a config error; compute time or a fee per request alone is a price", async () => {
  const { input, unpriced } = await unpricedExample();
  const withPrices = (prices: Record<string, string>) =>
    parseGatewayConfig({ ...input, models: [{ ...unpriced, prices }] });
  assert.throws(
    () => withPrices({ input_tokens: "$1" }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /prices\.output_tokens: prices has input tokens but no output_tokens/.test(error.shortMessage),
  );
  assert.throws(
    () => withPrices({ cached_input_tokens: "$0.5" }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") && /no output_tokens/.test(error.shortMessage),
  );
  assert.throws(
    () => withPrices({}),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") && /prices lists no unit/.test(error.shortMessage),
  );
  assert.equal(
    withPrices({ input_tokens: "$1", output_tokens: "$2" }).models[0]?.prices?.output_tokens,
    2_000_000n,
  );
  assert.ok(withPrices({ compute_ms: "$0.001" }).models[0]?.prices?.compute_ms !== undefined);
  assert.ok(withPrices({ requests: "$0.01" }).models[0]?.prices?.requests !== undefined);
  const feeOnly = parseGatewayConfig({ ...input, models: [{ ...unpriced, prices: {}, fixedFee: "$0.01" }] });
  assert.equal(feeOnly.models[0]?.fixedFee, 10_000n, "an empty map beside a fixed fee still charges");
  // fixedFee is the shorthand of prices.requests: alone, it prices the request, as the map's entry does.
  for (const kind of ["chat", "moderation"]) {
    const fixedFee = parseGatewayConfig({ ...input, models: [{ ...unpriced, kind, fixedFee: "$0.0001" }] });
    const [model] = fixedFee.models;
    assert.ok(model);
    assert.deepEqual(modelUnitPrices(model), { requests: 100n }, `a ${kind} model priced by fixedFee alone`);
  }
});

test("a price no route of the model meters, an itemized token price without its base, or a served route with no price is a config error naming the model and key", async () => {
  const { input, unpriced } = await unpricedExample();
  const refusal = (model: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(
      () => parseGatewayConfig({ ...input, models: [{ ...unpriced, id: "m1", ...model }] }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        /model m1/.test(error.shortMessage) &&
        pattern.test(error.shortMessage),
    );
  const chat = { inputPrice: "$1", outputPrice: "$2" };
  refusal(
    { ...chat, imagePrices: { "1024x1024": "$0.04" } },
    /prices images \(imagePrices\).*add image to backend\.apis/,
  );
  refusal({ prices: { input_tokens: "$1", output_tokens: "$2", images: "$0.04" } }, /prices\.images/);
  refusal(
    { prices: { cached_input_tokens: "$3", output_tokens: "$15" } },
    /prices cached_input_tokens but not input_tokens.*set inputPrice/,
  );
  refusal(
    { ...chat, prices: { cache_write_input_tokens: "$3" }, inputPrice: undefined },
    /cache_write_input_tokens but not input_tokens/,
  );
  refusal(
    { inputPrice: "$1", prices: { reasoning_tokens: "$15" } },
    /prices reasoning_tokens but not output_tokens.*set outputPrice/,
  );
  const embedding = { kind: "embedding", backend: { baseUrl: "http://127.0.0.1:9/v1" } };
  refusal(
    { ...embedding, prices: { input_tokens: "$1", output_tokens: "$2" } },
    /prices output_tokens \(prices\.output_tokens\), which none of its routes \(embedding\) meters/,
  );
  refusal({ ...embedding, inputPrice: "$1", outputPrice: "$2" }, /\(outputPrice\)/);
  refusal(
    {
      kind: "image",
      backend: { baseUrl: "http://127.0.0.1:9/v1", apis: ["image", "chat"] },
      imagePrices: { "1024x1024": "$0.04" },
    },
    /serves chat requests but prices none of the units that route meters.*every chat request would be served for nothing/,
  );
  refusal(
    { ...chat, prices: { input_characters: "$15" } },
    /prices input_characters \(prices\.input_characters\).*add speech to backend\.apis/,
  );
  refusal(
    { ...chat, prices: { input_audio_seconds: "$0.0001" } },
    /prices input_audio_seconds \(prices\.input_audio_seconds\).*add transcription to backend\.apis/,
  );
  refusal(
    {
      kind: "speech",
      backend: { baseUrl: "http://127.0.0.1:9/v1", apis: ["speech", "chat"] },
      prices: { input_characters: "$15" },
    },
    /serves chat requests but prices none of the units that route meters/,
  );
  refusal({ ...chat, prices: { input_tokens: "$1" } }, /sets inputPrice and prices\.input_tokens.*keep one/);
  refusal(
    { ...chat, pricePerSecond: "$0.001", prices: { compute_ms: "$0.001" } },
    /sets pricePerSecond and prices\.compute_ms/,
  );
  refusal(
    { ...chat, fixedFee: "$0.01", prices: { requests: "$0.01" } },
    /sets fixedFee and prices\.requests/,
  );

  const accepted = (model: Record<string, unknown>) =>
    parseGatewayConfig({ ...input, models: [{ ...unpriced, id: "m1", ...model }] }).models[0];
  // What stays possible: free units written as "$0", a fixed price, prices every served route meters.
  assert.equal(accepted({ inputPrice: "$0", outputPrice: "$0" })?.inputPrice, 0n);
  assert.equal(
    accepted({ ...chat, prices: { cached_input_tokens: "$0", reasoning_tokens: "$0" } })?.prices
      ?.cached_input_tokens,
    0n,
  );
  assert.equal(accepted({ exactPrice: "$0.01" })?.exactPrice, 10_000n);
  assert.ok(
    accepted({
      kind: "image",
      backend: { baseUrl: "http://127.0.0.1:9/v1", apis: ["image", "chat"] },
      imagePrices: { "1024x1024": "$0.04" },
      ...chat,
    }),
  );
  assert.ok(
    accepted({
      kind: "image",
      backend: { baseUrl: "http://127.0.0.1:9/v1", apis: ["image", "chat"] },
      imagePrices: { "1024x1024": "$0.04" },
      exactPrice: "$0.04",
    }),
  );
  assert.ok(accepted({ ...embedding, inputPrice: "$0.02" }));
  assert.equal(
    accepted({
      kind: "speech",
      backend: { baseUrl: "http://127.0.0.1:9/v1" },
      prices: { input_characters: "$15" },
    })?.prices?.input_characters,
    15_000_000n,
    "a speech model sold per character alone",
  );
  assert.ok(
    accepted({
      kind: "moderation",
      backend: { baseUrl: "http://127.0.0.1:9/v1" },
      fixedFee: "$0.0001",
      inputPrice: "$0.01",
    }),
  );
});

test("a mistyped key is named with the key it is nearest to, at any depth; an unknown one with the keys allowed there", async () => {
  const input = await exampleInput();
  const models = input.models as Array<Record<string, unknown>>;
  const [first] = models;
  assert.ok(first);
  const typo = {
    ...input,
    ledgr: {},
    colour: "blue",
    models: [
      { ...first, maxOutputTokns: 5, backend: { ...(first.backend as object), timeoutMS: 4 } },
      ...models.slice(1),
    ],
  };
  assert.throws(
    () => parseGatewayConfig(typo),
    (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_CONFIG_INVALID"));
      assert.match(error.shortMessage, /config key \(root\): unknown key "ledgr"; did you mean "ledger"\?/);
      assert.match(
        error.shortMessage,
        /config key models\.0: unknown key "maxOutputTokns"; did you mean "maxOutputTokens"\?/,
      );
      assert.match(
        error.shortMessage,
        /config key models\.0\.backend: unknown key "timeoutMS"; did you mean "timeoutMs"\?/,
      );
      assert.match(error.shortMessage, /unknown key "colour"; the keys here are network, .*payTo, .*models/);
      return true;
    },
  );
});

test("a payTo no payment could reach, or no one could spend from, is a config error naming payTo", async () => {
  const input = await exampleInput();
  const refused = (payTo: string, pattern: RegExp, extra: Record<string, unknown> = {}) =>
    assert.throws(
      () => parseGatewayConfig({ ...input, ...extra, payTo }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        new RegExp(`config key payTo: ${pattern.source}`).test(error.shortMessage),
    );
  refused(`0x${"00".repeat(20)}`, /payTo is the zero address: .*set payTo to an address you control/);
  refused(
    `0x${"0".repeat(36)}0100`,
    /payTo 0x0{36}0100 is an address the chain keeps for its own precompiles/,
  );
  // Amoy's USDC is the example's asset by default; a token named in the config is caught the same way.
  refused("0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582", /payTo is the settlement token's own address/);
  refused(`0x${"ab".repeat(20)}`, /payTo is the settlement token's own address/, {
    asset: `0x${"AB".repeat(20)}`,
  });
  refused("0x000000000022D473030F116dDEE9F6B43aC78BA3", /payTo is the Permit2 contract/);
  refused("0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003", /payTo is the x402 batch-settlement contract/);
  assert.equal(parseGatewayConfig({ ...input, payTo: `0x${"12".repeat(20)}` }).payTo, `0x${"12".repeat(20)}`);
});

test("a payTo or asset in mixed case whose EIP-55 checksum does not match is a config error: a mistyped character sends the money elsewhere", async () => {
  const input = await exampleInput();
  // The operator's address with its last digit mistyped (C for D): a valid address, someone else's.
  const mistyped = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BD";
  assert.throws(
    () => parseGatewayConfig({ ...input, payTo: mistyped }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key payTo: 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BD is written in mixed case, and its EIP-55 checksum does not match: .*copy the address again/.test(
        error.shortMessage,
      ),
  );
  assert.throws(
    () => parseGatewayConfig({ ...input, asset: "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7583" }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key asset: 0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7583 is written in mixed case/.test(
        error.shortMessage,
      ),
  );
  // Without a checksum (all lowercase or all uppercase) an address is taken as written.
  assert.equal(parseGatewayConfig({ ...input, payTo: mistyped.toLowerCase() }).payTo, mistyped.toLowerCase());
  assert.equal(parseGatewayConfig({ ...input, payTo: operatorPayTo }).payTo, operatorPayTo);
});

test("schemes that cannot pay some model are a config error naming the model and the scheme to add", async () => {
  const { input, unpriced } = await unpricedExample();
  const perToken = { ...unpriced, id: "per-token", inputPrice: "$1", outputPrice: "$2" };
  const fixed = { ...unpriced, id: "fixed", exactPrice: "$0.01" };
  const refused = (extra: Record<string, unknown>, pattern: RegExp) =>
    assert.throws(
      () => parseGatewayConfig({ ...input, ...extra }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        new RegExp(`config key schemes: ${pattern.source}`).test(error.shortMessage),
    );
  refused(
    { models: [perToken], schemes: ["exact"] },
    /model per-token can be paid only by upto, .*add upto to schemes/,
  );
  refused(
    { models: [fixed], schemes: ["upto", "batch-settlement"] },
    /model fixed can be paid only by exact/,
  );
  refused(
    { models: [perToken], schemes: ["batch-settlement"] },
    /model per-token .*\(batch-settlement needs the channels key\)/,
  );
  // A free model: no voucher pays 0, so channels alone cannot sell it.
  refused(
    {
      models: [{ ...perToken, inputPrice: "$0", outputPrice: "$0" }],
      schemes: ["batch-settlement"],
      channels: {},
    },
    /model per-token can be paid only by upto/,
  );
  assert.ok(
    parseGatewayConfig({ ...input, models: [perToken], schemes: ["batch-settlement"], channels: {} }),
  );
  assert.ok(parseGatewayConfig({ ...input, models: [perToken, fixed], schemes: ["upto", "exact"] }));
});

test("a timeout or interval longer than a timer can hold is a config error naming its key, not a call ended at once", async () => {
  const input = await exampleInput();
  const [first, ...rest] = input.models as Array<Record<string, unknown>>;
  assert.ok(first);
  const refused = (extra: Record<string, unknown>, key: string) =>
    assert.throws(
      () => parseGatewayConfig({ ...input, ...extra }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        error.shortMessage.includes(`config key ${key}: Too big`),
    );
  // Node fires a timer of 2^31 ms or more after 1 ms: a backend timeout of 3e9 ms answered every request 504.
  const backend = { ...(first.backend as object), timeoutMs: 3_000_000_000 };
  refused({ models: [{ ...first, backend }, ...rest] }, "models.0.backend.timeoutMs");
  refused(
    { facilitator: { url: "https://facilitator.example", timeoutMs: 3_000_000_000 } },
    "facilitator.timeoutMs",
  );
  refused({ recovery: { intervalSeconds: 3_000_000 } }, "recovery.intervalSeconds");
  const hour = { ...(first.backend as object), timeoutMs: 3_600_000 };
  assert.equal(
    parseGatewayConfig({ ...input, models: [{ ...first, backend: hour }] }).models[0]?.backend.timeoutMs,
    3_600_000,
  );
});

test("a price that is not money says what is wrong with it once, and what to write", async () => {
  const { input, unpriced } = await unpricedExample();
  const refusal = (inputPrice: unknown) => {
    try {
      parseGatewayConfig({ ...input, models: [{ ...unpriced, inputPrice, outputPrice: "$1" }] });
    } catch (error) {
      assert.ok(isTollgateError(error, "TOLLGATE_CONFIG_INVALID"));
      return error.shortMessage;
    }
    assert.fail(`${String(inputPrice)} was accepted`);
  };
  assert.equal(
    refusal("$0.0000001"),
    'config key models.0.inputPrice: invalid amount "$0.0000001": more than 6 decimals; the asset cannot represent it exactly',
  );
  assert.equal(
    refusal("1e3"),
    'config key models.0.inputPrice: invalid amount "1e3": expected "$<amount>" (e.g. "$0.05") or an integer number of atomic units (e.g. "50000")',
  );
  assert.equal(refusal(-1), "config key models.0.inputPrice: -1: money cannot be negative");
  assert.equal(
    refusal(0.15),
    'config key models.0.inputPrice: 0.15 is not a whole number of atomic units; write "$0.15" (with the quotes) for dollars',
  );
});

test("an exactPrice of $0 is a config error: a free model is priced per unit at $0, which sends no transaction", async () => {
  const { input, unpriced } = await unpricedExample();
  for (const model of [
    { ...unpriced, exactPrice: "$0" },
    { ...unpriced, exactPrice: 0, inputPrice: "$1", outputPrice: "$2" },
  ])
    assert.throws(
      () => parseGatewayConfig({ ...input, models: [model] }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        /config key models\.0\.exactPrice: exactPrice "\$0" would have the facilitator send a transaction, at the seller's gas, for every request/.test(
          error.shortMessage,
        ),
    );
  const free = parseGatewayConfig({
    ...input,
    models: [{ ...unpriced, inputPrice: "$0", outputPrice: "$0" }],
  });
  assert.equal(free.models[0]?.inputPrice, 0n);
});

test("a fixedFee beside exactPrice, with no other unit price, is a config error: the fee alone would sell every request by upto, whatever its tokens", async () => {
  const { input, unpriced } = await unpricedExample();
  assert.throws(
    () =>
      parseGatewayConfig({ ...input, models: [{ ...unpriced, exactPrice: "$0.01", fixedFee: "$0.001" }] }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key models\.0\.fixedFee: fixedFee beside exactPrice/.test(error.shortMessage),
  );
  // With token prices, the fee is added to them: sold by upto per token and per request, or exact at its price.
  const both = parseGatewayConfig({
    ...input,
    models: [{ ...unpriced, exactPrice: "$0.01", fixedFee: "$0.001", inputPrice: "$1", outputPrice: "$2" }],
  });
  assert.equal(modelUnitPrices(both.models[0] as NonNullable<(typeof both.models)[0]>)?.requests, 1000n);
});

test("a recovery.settlingGraceSeconds not longer than timeouts.settleSeconds is a config error naming both keys and what to write", async () => {
  const input = await exampleInput();
  for (const [settleSeconds, settlingGraceSeconds] of [
    [300, 120],
    [120, 120],
  ] as const)
    assert.throws(
      () => parseGatewayConfig({ ...input, timeouts: { settleSeconds }, recovery: { settlingGraceSeconds } }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        new RegExp(
          `config key recovery\\.settlingGraceSeconds: recovery\\.settlingGraceSeconds \\(${settlingGraceSeconds}\\) must be longer than timeouts\\.settleSeconds \\(${settleSeconds}\\).*set recovery\\.settlingGraceSeconds to at least ${settleSeconds + 30}`,
        ).test(error.shortMessage),
    );
  const config = parseGatewayConfig({
    ...input,
    timeouts: { settleSeconds: 300 },
    recovery: { settlingGraceSeconds: 330 },
  });
  assert.equal(config.recovery.settlingGraceSeconds, 330);
});

test("a contextTokens below the model's maxOutputTokens is a config error: a window written in thousands would bound every inline document at a few tokens", async () => {
  const input = await exampleInput();
  const [first, ...rest] = input.models as Array<Record<string, unknown>>;
  const withWindow = (model: Record<string, unknown>) => ({ ...input, models: [model, ...rest] });
  assert.throws(
    // 128k written as 128: each PDF would be quoted, and charged at most, as 128 prompt tokens.
    () => parseGatewayConfig(withWindow({ ...first, contextTokens: 128 })),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key models\.0\.contextTokens: model \S+ has contextTokens 128, below its maxOutputTokens 4096 \(default 4096\): .*lower maxOutputTokens to what it holds; .*write it in tokens \(e\.g\. 128000 for 128k\)/.test(
        error.shortMessage,
      ),
  );
  const config = parseGatewayConfig(withWindow({ ...first, contextTokens: 128_000 }));
  assert.equal(config.models[0]?.contextTokens, 128_000);
  // A small model's own window is taken with the output it can hold.
  const small = parseGatewayConfig(withWindow({ ...first, contextTokens: 2_048, maxOutputTokens: 1_024 }));
  assert.equal(small.models[0]?.contextTokens, 2_048);
});

test("a backend.outputLimitFields naming a field the request carries (n, best_of, model) is a config error: the output limit would overwrite it", async () => {
  const input = await exampleInput();
  const [first, ...rest] = input.models as Array<Record<string, unknown>>;
  const withFields = (kind: string, outputLimitFields: string[]) => ({
    ...input,
    models: [{ ...first, kind, backend: { ...(first?.backend as object), outputLimitFields } }, ...rest],
  });
  // On completions, n and best_of set to the output limit (4096) had the backend generate 4096 choices for one paid.
  assert.throws(
    () => parseGatewayConfig(withFields("completion", ["n_predict", "n", "best_of"])),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key models\.0\.backend\.outputLimitFields\.1: model \S+: "n" is a field of completion requests, which the gateway forwards to the backend: set to the output limit \(up to maxOutputTokens, 4096\), it would change the request the buyer paid for .*name only the backend's own output-limit field/.test(
        error.shortMessage,
      ) &&
      /config key models\.0\.backend\.outputLimitFields\.2: model \S+: "best_of"/.test(error.shortMessage),
  );
  assert.throws(
    () => parseGatewayConfig(withFields("messages", ["model"])),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /outputLimitFields\.0: model \S+: "model" is a field of messages requests/.test(error.shortMessage),
  );
  // The backend's own fields, and the output limits the route sets itself, carry the limit.
  for (const [kind, fields] of [
    ["chat", ["n_predict", "max_tokens", "max_completion_tokens"]],
    ["completion", ["max_new_tokens", "max_tokens"]],
    ["responses", ["max_output_tokens", "num_predict"]],
  ] as const)
    assert.deepEqual(
      parseGatewayConfig(withFields(kind, [...fields])).models[0]?.backend.outputLimitFields,
      fields,
    );
});

test("a backend.model that reads an image as more tokens than the public id says is a config error: each image would be charged at the id's bound", async () => {
  const input = await exampleInput();
  const [first, ...rest] = input.models as Array<Record<string, unknown>>;
  const serving = (id: string, upstream: string) => ({
    ...input,
    models: [{ ...first, id, backend: { ...(first?.backend as object), model: upstream } }, ...rest],
  });
  for (const [id, upstream, bound] of [
    ["vision-mini", "gpt-4o-mini", 16_384],
    ["gpt-4o", "gpt-4o-mini-2024-07-18", 4_000],
  ] as const)
    assert.throws(
      () => parseGatewayConfig(serving(id, upstream)),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        new RegExp(
          `config key models\\.0\\.backend\\.model: model ${id} sends ${upstream} upstream, which reads an image as up to 48169 tokens, but buyers and this gateway bound an image sent to ${id} at ${bound}, by its id: .*publish the model under its upstream name \\(id: ${upstream}\\)`,
        ).test(error.shortMessage),
    );
  // An id naming the upstream model, or an upstream model that reads images as fewer tokens, is taken.
  for (const [id, upstream] of [
    ["gpt-4o-mini", "gpt-4o-mini-2024-07-18"],
    ["gpt-4o-mini-fast", "gpt-4o-mini"],
    ["fast", "gpt-4o"],
    ["gpt-4o", "my-azure-deployment"],
  ] as const)
    assert.equal(parseGatewayConfig(serving(id, upstream)).models[0]?.backend.model, upstream);
  // A model that reads no image (speech) is taken under any id.
  const tts = parseGatewayConfig({
    ...input,
    models: [
      {
        id: "voice",
        kind: "speech",
        backend: { ...(first?.backend as object), model: "gpt-4o-mini-tts" },
        prices: { input_characters: "$15" },
      },
      ...rest,
    ],
  });
  assert.equal(tts.models[0]?.backend.model, "gpt-4o-mini-tts");
});

test("a maxOutputTokens above 1000000 or a server.maxBodyBytes above 64 MiB is a config error naming the key and the bound", async () => {
  const input = await exampleInput();
  const [first, ...rest] = input.models as Array<Record<string, unknown>>;
  // 2^53 - 1 tokens at the example's $0.60 per 1M: a request naming no max_tokens was quoted about $5.4 billion.
  for (const maxOutputTokens of [Number.MAX_SAFE_INTEGER, 1_000_001])
    assert.throws(
      () => parseGatewayConfig({ ...input, models: [{ ...first, maxOutputTokens }, ...rest] }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        /config key models\.0\.maxOutputTokens: at most 1000000 .*write the model's own output limit/.test(
          error.shortMessage,
        ),
    );
  assert.throws(
    () => parseGatewayConfig({ ...input, server: { maxBodyBytes: 2 ** 40 } }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key server\.maxBodyBytes: at most 67108864 \(64 MiB\).*held in memory/.test(error.shortMessage),
  );
  const config = parseGatewayConfig({
    ...input,
    models: [{ ...first, maxOutputTokens: 1_000_000 }, ...rest],
    server: { maxBodyBytes: 64 * 1024 * 1024 },
  });
  assert.equal(config.models[0]?.maxOutputTokens, 1_000_000);
  assert.equal(config.server.maxBodyBytes, 64 * 1024 * 1024);
});

test("with a remote facilitator, a recovery.settlingGraceSeconds not longer than facilitator.timeoutMs is a config error: the settle call runs until then", async () => {
  const input = await exampleInput();
  const facilitator = { url: "https://facilitator.example", timeoutMs: 600_000 };
  assert.throws(
    () => parseGatewayConfig({ ...input, facilitator }),
    (error: unknown) =>
      isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
      /config key recovery\.settlingGraceSeconds: recovery\.settlingGraceSeconds \(120\) must be longer than facilitator\.timeoutMs \(600000 ms\).*set recovery\.settlingGraceSeconds to at least 630, or facilitator\.timeoutMs below 120000/.test(
        error.shortMessage,
      ),
  );
  const config = parseGatewayConfig({
    ...input,
    maxTimeoutSeconds: 900,
    facilitator,
    recovery: { settlingGraceSeconds: 630 },
  });
  assert.equal(config.recovery.settlingGraceSeconds, 630);
});

test("a channels.refundIdleSeconds under 600 is a config error: an idle refund and the next deposit are each a transaction the seller pays", async () => {
  const input = await exampleInput();
  for (const refundIdleSeconds of [0.001, 1, 599])
    assert.throws(
      () => parseGatewayConfig({ ...input, channels: { refundIdleSeconds } }),
      (error: unknown) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        /config key channels\.refundIdleSeconds: at least 600 .*leave it out to never refund on its own/.test(
          error.shortMessage,
        ),
    );
  assert.equal(
    parseGatewayConfig({ ...input, channels: { refundIdleSeconds: 86_400 } }).channels?.refundIdleSeconds,
    86_400,
  );
});
