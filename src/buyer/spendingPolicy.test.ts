import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { checkOffer } from "./checkOffer.js";
import { parseSpendingPolicy, parseSpendingPolicyYaml, providerOrigin } from "./spendingPolicy.js";

const offer = {
  scheme: "upto",
  network: "eip155:137",
  asset: "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
  payTo: "0x1111111111111111111111111111111111111111",
} as const;

describe("spending policy", () => {
  test("reads the documented YAML: dollars and atomic units, providers keyed by origin", () => {
    const policy = parseSpendingPolicyYaml(`
perCall: "$0.05"
daily: "$5.00"
providers:
  "https://api.example.com/v1":
    perCall: "20000"
    daily: "$1"
    payTo: ["0x1111111111111111111111111111111111111111"]
maxOverExpected: 3
confirmAbove: "$0.50"
networks: ["eip155:137", "eip155:31337"]
assets: ["0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359"]
`);
    assert.equal(policy.perCall, 50_000n);
    assert.equal(policy.daily, 5_000_000n);
    assert.equal(policy.confirmAbove, 500_000n);
    assert.deepEqual(Object.keys(policy.providers), ["https://api.example.com"]);
    assert.equal(policy.providers["https://api.example.com"]?.perCall, 20_000n);
    assert.equal(policy.providers["https://api.example.com"]?.daily, 1_000_000n);
  });

  test("an MCP tool server's key (mcp://name) is its own provider, so its payTo list and caps apply to it", () => {
    const policy = parseSpendingPolicy({
      providers: { "mcp://weather-tools": { perCall: "$0.01", payTo: [`0x${"11".repeat(20)}`] } },
    });
    assert.deepEqual(Object.keys(policy.providers), ["mcp://weather-tools"]);
    const refusal = checkOffer({
      policy,
      origin: "mcp://weather-tools",
      offer: {
        scheme: "exact",
        network: "eip155:8453",
        asset: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        payTo: `0x${"22".repeat(20)}`,
      },
      askedAtomic: 1_000_000n,
    });
    assert.equal(refusal?.rule, "providers.payTo");
  });

  test("an empty policy file is refused, not read as a policy without limits; {} is one", () => {
    for (const text of ["", "\n", '# perCall: "$0.05"\n# daily: "$1.00"\n']) {
      assert.throws(
        () => parseSpendingPolicyYaml(text),
        (error: unknown) =>
          isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
          /spending policy is empty/.test(error.shortMessage),
        JSON.stringify(text),
      );
    }
    const none = parseSpendingPolicyYaml("{}\n");
    assert.equal(none.perCall, undefined);
    assert.equal(none.daily, undefined);
  });

  test("a mistyped key is named with the key it is nearest to", () => {
    assert.throws(
      () => parseSpendingPolicy({ dialy: "$1" }),
      /spending policy: \(policy\): unknown key "dialy"; did you mean "daily"\?/,
    );
    assert.throws(
      () => parseSpendingPolicy({ providers: { "https://a.example": { perCal: "$1" } } }),
      /unknown key "perCal"; did you mean "perCall"\?/,
    );
  });

  test("refuses an unknown key or a bad amount, naming the field", () => {
    for (const [input, field] of [
      [{ perCal: "$1" }, "(policy)"],
      [{ daily: "5" }, undefined],
      [{ daily: "0.05" }, "daily"],
      [{ providers: { "https://a.example": { daily: -1 } } }, "providers"],
      [{ maxOverExpected: 0 }, "maxOverExpected"],
      [{ maxTimeoutSeconds: 0 }, "maxTimeoutSeconds"],
      [{ maxTimeoutSeconds: 1.5 }, "maxTimeoutSeconds"],
      [{ providers: { "https://a.example": { maxTimeoutSeconds: "1h" } } }, "providers"],
    ] as const) {
      if (field === undefined) {
        assert.equal(parseSpendingPolicy(input).daily, 5n, "a bare integer is atomic units");
        continue;
      }
      assert.throws(
        () => parseSpendingPolicy(input),
        (error: unknown) =>
          isTollgateError(error, "TOLLGATE_CONFIG_INVALID") && error.shortMessage.includes(field),
      );
    }
  });
});

describe("checkOffer", () => {
  const check = (
    policyInput: Parameters<typeof parseSpendingPolicy>[0],
    askedAtomic: bigint,
    expectedAtomic?: bigint,
  ) =>
    checkOffer({
      policy: parseSpendingPolicy(policyInput),
      origin: "https://api.example.com",
      offer,
      askedAtomic,
      expectedAtomic,
    });

  test("allows what no rule forbids", () => {
    assert.equal(check({ perCall: "$0.05", maxOverExpected: 3 }, 50_000n, 20_000n), undefined);
  });

  test("a policy that names no assets pays nothing on a network whose USDC the buyer does not know: an 8-decimal token there is no dollar", () => {
    // Wrapped bitcoin on Ethereum: 50,000 atomic units, "$0.05" to a policy counting in USDC units.
    const wbtc = {
      ...offer,
      network: "eip155:1",
      asset: "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599",
    } as const;
    const refused = checkOffer({
      policy: parseSpendingPolicy({ perCall: "$0.05", daily: "$1.00" }),
      origin: "https://api.example.com",
      offer: wbtc,
      askedAtomic: 50_000n,
    });
    assert.equal(refused?.rule, "assets");
    assert.match(refused?.message ?? "", /eip155:1, whose USDC this buyer does not know/);
    assert.equal(
      checkOffer({
        policy: parseSpendingPolicy({ assets: [wbtc.asset] }),
        origin: "https://api.example.com",
        offer: wbtc,
        askedAtomic: 50_000n,
      }),
      undefined,
      "a policy naming the token pays in it",
    );
  });

  test("a policy that names no assets pays in the network's USDC alone, and in any token on the devnet", () => {
    const otherToken = { ...offer, asset: "0x1BFD67037B42Cf73acF2047067bd4F2C47D9BfD6" };
    const refused = checkOffer({
      policy: parseSpendingPolicy({ perCall: "$0.05" }),
      origin: "https://api.example.com",
      offer: otherToken,
      askedAtomic: 1n,
    });
    assert.equal(refused?.rule, "assets");
    assert.match(refused?.message ?? "", /not eip155:137's USDC/);
    const devnetToken = { ...otherToken, network: "eip155:31337" } as const;
    assert.equal(
      checkOffer({
        policy: parseSpendingPolicy({}),
        origin: "https://api.example.com",
        offer: devnetToken,
        askedAtomic: 1n,
      }),
      undefined,
    );
  });

  test("onlyProviders pays the listed origins alone, however their URL is written", () => {
    const listed = { onlyProviders: true, providers: { "HTTPS://API.example.com:443/v1": {} } };
    assert.equal(check(listed, 1n), undefined, "the listed origin, its path, case and default port aside");
    const other = checkOffer({
      policy: parseSpendingPolicy(listed),
      origin: "https://api.example.com.evil.example",
      offer,
      askedAtomic: 1n,
    });
    assert.equal(other?.rule, "onlyProviders");
    assert.match(other?.message ?? "", /not among the policy's providers \(https:\/\/api\.example\.com\)/);
    assert.equal(check({ onlyProviders: true }, 1n)?.rule, "onlyProviders", "none listed: none paid");
    assert.equal(check({}, 1n), undefined, "off by default");
  });

  test("a host name written with its root dot is the same provider: its caps and payTo list bind it", () => {
    const policy = parseSpendingPolicy({
      providers: { "https://api.example.com": { perCall: "$0.01", payTo: [offer.payTo] } },
    });
    for (const url of ["https://api.example.com./v1/chat/completions", "https://API.example.com.:443"]) {
      const origin = providerOrigin(url);
      assert.equal(origin, "https://api.example.com", url);
      assert.equal(
        checkOffer({ policy, origin, offer, askedAtomic: 10_001n })?.rule,
        "providers.perCall",
        url,
      );
      const elsewhere = { ...offer, payTo: "0x2222222222222222222222222222222222222222" };
      assert.equal(
        checkOffer({ policy, origin, offer: elsewhere, askedAtomic: 1n })?.rule,
        "providers.payTo",
        url,
      );
    }
    const dotted = parseSpendingPolicy({
      onlyProviders: true,
      providers: { "http://localhost.:8402/v1": {} },
    });
    assert.deepEqual(Object.keys(dotted.providers), ["http://localhost:8402"]);
    assert.equal(providerOrigin("mcp://weather-tools."), "mcp://weather-tools");
    assert.equal(providerOrigin("http://[::1]:8402/"), "http://[::1]:8402");
    assert.equal(providerOrigin("http://127.0.0.1.:8402/"), "http://127.0.0.1:8402");
  });

  test("names the rule and the figures", () => {
    assert.deepEqual(
      { ...check({ perCall: "$0.05" }, 50_001n), message: "" },
      {
        rule: "perCall",
        limitAtomic: 50_000n,
        askedAtomic: 50_001n,
        origin: "https://api.example.com",
        message: "",
      },
    );
    assert.equal(
      check({ providers: { "https://api.example.com": { perCall: "10" } } }, 11n)?.rule,
      "providers.perCall",
    );
    assert.equal(check({ networks: ["eip155:8453"] }, 1n)?.rule, "networks");
    assert.equal(check({ assets: ["0x2222222222222222222222222222222222222222"] }, 1n)?.rule, "assets");
    assert.equal(
      check(
        {
          providers: { "https://api.example.com": { payTo: ["0x2222222222222222222222222222222222222222"] } },
        },
        1n,
      )?.rule,
      "providers.payTo",
    );
  });

  test("refuses an authorization valid longer than maxTimeoutSeconds (default an hour), globally and per provider", () => {
    const checkTimeout = (
      policyInput: Parameters<typeof parseSpendingPolicy>[0],
      maxTimeoutSeconds: number,
    ) =>
      checkOffer({
        policy: parseSpendingPolicy(policyInput),
        origin: "https://api.example.com",
        offer: { ...offer, maxTimeoutSeconds },
        askedAtomic: 1n,
      });
    assert.equal(parseSpendingPolicy({}).maxTimeoutSeconds, 3600);
    assert.equal(checkTimeout({}, 3600), undefined);
    assert.deepEqual(
      { ...checkTimeout({}, 3601), message: "" },
      {
        rule: "maxTimeoutSeconds",
        limitSeconds: 3600,
        askedSeconds: 3601,
        origin: "https://api.example.com",
        message: "",
      },
    );
    assert.match(
      checkTimeout({}, 315_360_000)?.message ?? "",
      /valid 315360000 s, above the policy's maxTimeoutSeconds of 3600 s/,
    );
    assert.equal(checkTimeout({ maxTimeoutSeconds: 86_400 }, 86_400), undefined);
    const provider = { providers: { "https://api.example.com/v1": { maxTimeoutSeconds: 60 } } };
    assert.equal(checkTimeout(provider, 60), undefined);
    assert.equal(checkTimeout(provider, 61)?.rule, "providers.maxTimeoutSeconds");
  });

  test("maxOverExpected compares exactly, fractions included", () => {
    assert.equal(check({ maxOverExpected: 1.5 }, 150n, 100n), undefined);
    const refusal = check({ maxOverExpected: 1.5 }, 151n, 100n);
    assert.equal(refusal?.rule, "maxOverExpected");
    assert.equal(refusal?.limitAtomic, 150n);
    assert.equal(check({ maxOverExpected: 1.5 }, 10_000n), undefined, "no estimate, no ratio");
  });
});
