import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { isLoopbackHost } from "../src/cli/loopbackHost.js";
import { runCli } from "./support/runCli.js";
import { runMain } from "./support/runMain.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tollgate-messages-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const validKey = `0x${"4c".repeat(32)}`;

describe("the CLI says what to do in words", () => {
  test("a missing required flag is named, not described by the parser: exit 2", async () => {
    const run = await runMain(["chat", "--model", "m", "hello"]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /chat: --gateway is required/);
    assert.doesNotMatch(run.stderr, /expected array/);
  });

  test("dev refuses to serve a real upstream beyond loopback, before it starts anything: exit 2", async () => {
    for (const host of ["0.0.0.0", "192.168.1.20", "::", "[::]", "example.com"]) {
      const run = await runMain(["dev", "--host", host, "--upstream", "https://api.openai.com/v1"]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /is not a loopback address/);
      assert.match(run.stderr, /devnet USDC, which anyone can mint for free/);
      assert.match(run.stderr, /sell a real upstream with tollgate gateway on a real network/);
      assert.doesNotMatch(run.stdout, /Starting Tollgate dev/, "nothing was started");
    }
    for (const host of ["127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]"])
      assert.ok(isLoopbackHost(host), host);
  });

  test("an unknown flag suggests the closest one: exit 2", async () => {
    const run = await runMain(["chat", "--gatway", "http://127.0.0.1:9", "--model", "m", "hi"]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /unknown flag --gatway; did you mean --gateway\?/);
    const far = await runMain(["ledger", "--zzzzzz"]);
    assert.equal(far.code, 2);
    assert.match(far.stderr, /unknown flag --zzzzzz; the flags are --data-dir, --limit, --json/);
  });

  test("a config file that is not there is named with what to do: copy the example: exit 2", async () => {
    const missing = join(dir, "nowhere", "tollgate.yaml");
    for (const args of [
      ["gateway", "--config", missing],
      ["reconcile", "--config", missing],
    ]) {
      const run = await runMain(args);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /cannot read config file .*tollgate\.yaml: no such file/);
      // Named once, by the path to copy from (here the repository's own example, in the current directory).
      assert.match(run.stderr, /copy tollgate\.example\.yaml to it and edit it/);
      assert.doesNotMatch(run.stderr, /tollgate\.example\.yaml \(/);
    }
  });

  test("reconcile with no config and no running tollgate dev says the dev ledger is reconciled while it runs: exit 2", async () => {
    // A stopped tollgate dev's ledger: its chain is gone, and no tollgate.yaml was ever needed.
    const run = await runMain(["reconcile", "--data-dir", join(dir, "stopped-dev", "ledger")], {
      DATABASE_URL: undefined,
    });
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /no tollgate dev or gateway is running on .*stopped-dev\/ledger, and there is no tollgate\.yaml here: run tollgate reconcile while tollgate dev runs \(its chain stops with it\), or name the gateway's config with --config/,
    );
    assert.doesNotMatch(run.stderr, /copy tollgate\.example\.yaml/);
  });

  test("--help puts one blank line between its title and the first command", async () => {
    const run = await runMain(["--help"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /^tollgate — pay-per-token billing for AI inference over x402\n\ntollgate --version\n/,
    );
  });

  test("a flag's bad value and a stray argument are explained: exit 2", async () => {
    const limit = await runMain(["ledger", "--limit", "many"]);
    assert.equal(limit.code, 2);
    assert.match(limit.stderr, /--limit must be a number, not "many"/);
    const url = await runMain(["pay", "--url", "not a url", "--private-key", validKey]);
    assert.equal(url.code, 2);
    assert.match(url.stderr, /--url must be a URL such as/);
    const stray = await runMain(["spend", "today"]);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /unexpected argument "today"/);
    const missingValue = await runMain(["ledger", "--limit"]);
    assert.equal(missingValue.code, 2);
    assert.match(missingValue.stderr, /--limit needs a value/);
  });

  test("a malformed private key is called not valid, with what is wrong and never the key", async () => {
    const short = `0x${"ab".repeat(31)}`;
    const run = await runMain(["pay", "--url", "http://127.0.0.1:9/v1/models", "--private-key", short]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /the private key is not valid: it has 62 hex digits after 0x; a private key has exactly 64/,
    );
    assert.doesNotMatch(run.stderr, new RegExp(short));
    const fromEnv = await runMain(["pay", "--url", "http://127.0.0.1:9/v1/models"], {
      TOLLGATE_PRIVATE_KEY: `0x${"zz".repeat(32)}`,
      TOLLGATE_DATA_DIR: "memory://",
    });
    assert.equal(fromEnv.code, 2);
    assert.match(
      fromEnv.stderr,
      /the private key is not valid: it holds characters that are not hex digits .*TOLLGATE_PRIVATE_KEY/,
    );
    const zero = await runMain([
      "pay",
      "--url",
      "http://127.0.0.1:9/v1/models",
      "--private-key",
      `0x${"00".repeat(32)}`,
    ]);
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /not a valid secp256k1 key/);
    const none = await runMain(["pay", "--url", "http://127.0.0.1:9/v1/models"], {
      TOLLGATE_PRIVATE_KEY: "",
    });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /a private key is needed: --private-key or the variable TOLLGATE_PRIVATE_KEY/);
  });

  test("a URL where nothing answers is said so in words, not as fetch's own error: exit 1", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const env = { TOLLGATE_DATA_DIR: "memory://" };
    const pay = await runMain(
      ["pay", "--url", `http://127.0.0.1:${port}/v1/models`, "--private-key", validKey],
      env,
    );
    assert.equal(pay.code, 1, pay.stderr);
    assert.match(
      pay.stderr,
      new RegExp(
        `tollgate pay: nothing answers at 127\\.0\\.0\\.1:${port} \\(connection refused\\): check the URL, and that the gateway is running there`,
      ),
    );
    assert.doesNotMatch(pay.stderr, /fetch failed|ECONNREFUSED/);
    const chat = await runMain(
      ["chat", "--gateway", "http://tollgate-test.invalid", "--model", "m", "--private-key", validKey, "hi"],
      env,
    );
    assert.equal(chat.code, 1, chat.stderr);
    assert.match(
      chat.stderr,
      /tollgate chat: the host tollgate-test\.invalid cannot be found \(DNS lookup failed\): check the URL/,
    );
  });

  test("a port already taken is said so, with what to do, not as Node's listen error: exit 1", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const run = await runMain(["spend", "--serve", "--port", String(port)], {
        TOLLGATE_DATA_DIR: "memory://",
      });
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(
          `tollgate spend: port ${port} on 127\\.0\\.0\\.1 is taken by another process .*choose another port with --port`,
        ),
      );
      assert.doesNotMatch(run.stderr, /EADDRINUSE/);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  test("dev on a port already taken says so before it starts anything or opens its ledger: exit 1", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as AddressInfo;
    const dataDir = join(dir, "dev-on-taken-port");
    try {
      const run = await runMain(["dev", "--port", String(port), "--data-dir", dataDir]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(`tollgate dev: port ${port} on 127\\.0\\.0\\.1 is taken by another process`),
      );
      assert.doesNotMatch(run.stdout, /Starting Tollgate dev/, "nothing was started");
      assert.equal(existsSync(dataDir), false, "no ledger was opened");
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  test("facilitator refuses to start without --rpc, and against a chain that does not answer", async () => {
    const noRpc = await runMain(["facilitator", "--private-key", validKey]);
    assert.equal(noRpc.code, 2, noRpc.stderr);
    assert.match(noRpc.stderr, /--rpc is required: the JSON-RPC URL of the chain/);
    const dead = await runMain([
      "facilitator",
      "--rpc",
      "http://127.0.0.1:9",
      "--private-key",
      validKey,
      "--port",
      "0",
    ]);
    assert.equal(dead.code, 1, dead.stderr);
    assert.match(dead.stderr, /no chain answers at --rpc http:\/\/127\.0\.0\.1:9/);
    const guessable = await runMain(
      ["facilitator", "--rpc", "http://127.0.0.1:9", "--private-key", validKey, "--port", "0"],
      { TOLLGATE_FACILITATOR_TOKEN: "secret" },
    );
    assert.equal(guessable.code, 2, guessable.stderr);
    assert.match(guessable.stderr, /TOLLGATE_FACILITATOR_TOKEN is 6 characters: use at least 16/);
    // On a real network a token made up at start would not survive a restart: it must be given.
    const unset = await runMain(
      [
        "facilitator",
        "--rpc",
        "http://127.0.0.1:9",
        "--private-key",
        validKey,
        "--network",
        "base",
        "--port",
        "0",
      ],
      { TOLLGATE_FACILITATOR_TOKEN: "" },
    );
    assert.equal(unset.code, 2, unset.stderr);
    assert.match(
      unset.stderr,
      /set TOLLGATE_FACILITATOR_TOKEN .* on a real network the token must survive restarts/,
    );
  });

  test("reconcile against a chain that does not answer says so with the RPC it asked, not as viem's error: exit 1", async () => {
    const config = join(dir, "reconcile-dead-chain.yaml");
    await writeFile(
      config,
      [
        "network: eip155:31337",
        "rpcUrl: http://127.0.0.1:9",
        'asset: "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"',
        'payTo: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"',
        "facilitator: { privateKeyEnv: TOLLGATE_TEST_UNSET_KEY }",
        "models:",
        "  - id: m",
        "    backend: { baseUrl: http://127.0.0.1:9/v1 }",
        '    inputPrice: "$0.50"',
        '    outputPrice: "$1.50"',
        "",
      ].join("\n"),
    );
    const run = await runMain(["reconcile", "--config", config, "--data-dir", join(dir, "reconcile-ledger")]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /tollgate reconcile: no chain answers at the config's rpcUrl http:\/\/127\.0\.0\.1:9: reconcile reads the chain's transfers, so give a reachable RPC \(--rpc URL\)/,
    );
    assert.doesNotMatch(run.stderr, /HTTP request failed|fetch failed|viem@/);
  });

  test("an unknown command is a usage error: the process exits 2", async () => {
    const run = await runCli(["pya"]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown command 'pya'/);
  });
});

describe("a gateway config is checked whole", () => {
  const payTo = "0x1111111111111111111111111111111111111111";

  test("a price written as a number says to write it in dollars, in quotes", async () => {
    const file = join(dir, "number-price.yaml");
    await writeFile(
      file,
      `payTo: "${payTo}"\nmodels:\n  - id: m\n    backend: { baseUrl: "http://127.0.0.1:9/v1" }\n    inputPrice: 0.15\n    outputPrice: "$0.60"\n`,
    );
    const run = await runMain(["gateway", "--config", file]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(
      run.stderr,
      /models\.0\.inputPrice: 0\.15 is not a whole number of atomic units; write "\$0\.15" \(with the quotes\)/,
    );
  });

  test("an address written without quotes is read as the address, not as a hexadecimal number", async () => {
    const file = join(dir, "unquoted-address.yaml");
    await writeFile(
      file,
      `network: eip155:31337\npayTo: 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC\nasset: 0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512\nmodels:\n  - id: m\n    backend: { baseUrl: "http://127.0.0.1:9/v1" }\n    inputPrice: 0.15\n    outputPrice: "$0.60"\n`,
    );
    const run = await runMain(["gateway", "--config", file]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /has 1 problem|config key models\.0\.inputPrice/);
    assert.doesNotMatch(run.stderr, /payTo|asset|received number/);
    const policy = join(dir, "unquoted-policy.yaml");
    await writeFile(policy, 'perCall: "$0.05"\nassets: [0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512]\n');
    const spend = await runMain(["spend", "--json", "--policy", policy], { TOLLGATE_DATA_DIR: "memory://" });
    assert.equal(spend.code, 0, spend.stderr);
  });

  test("every problem is reported at once, a missing variable of one model not hiding another's error", async () => {
    const file = join(dir, "many-problems.yaml");
    await writeFile(
      file,
      [
        `payTo: "${payTo}"`,
        "models:",
        "  - id: first",
        '    backend: { baseUrl: "http://127.0.0.1:9/v1", apiKeyEnv: TOLLGATE_TEST_UNSET_KEY }',
        '    inputPrice: "$0.10"',
        '    outputPrice: "$0.20"',
        "  - id: second",
        "    backend: { baseUrl: not-a-url }",
        "    inputPrice: 0.5",
        '    outputPrice: "$0.20"',
        "",
      ].join("\n"),
    );
    const run = await runCli(["gateway", "--config", file], { TOLLGATE_TEST_UNSET_KEY: "" });
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /has 3 problems/);
    assert.match(
      run.stderr,
      /models\.0\.backend\.apiKeyEnv: environment variable TOLLGATE_TEST_UNSET_KEY is not set/,
    );
    assert.match(run.stderr, /models\.1\.backend\.baseUrl/);
    assert.match(run.stderr, /models\.1\.inputPrice: 0\.5 is not a whole number/);
  });
});
