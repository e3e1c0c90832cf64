import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { eip3009ABI, x402ExactPermit2ProxyABI, x402UptoPermit2ProxyABI } from "@x402/evm";
import { pino } from "pino";
import type { Abi, AbiParameter } from "viem";
import type { DevnetArtifacts } from "./artifacts.js";
import { compileContracts } from "./compileContracts.js";

type CacheLine = { unit: string; cache: "hit" | "miss" };

/** A logger that records each compile unit's cache outcome. */
function recordingLogger() {
  const lines: CacheLine[] = [];
  const logger = pino(
    { level: "info" },
    {
      write(line: string) {
        const entry = JSON.parse(line) as Partial<CacheLine>;
        if (entry.unit !== undefined && entry.cache !== undefined)
          lines.push({ unit: entry.unit, cache: entry.cache });
      },
    },
  );
  return { logger, lines };
}

/** The canonical type of an ABI parameter, tuples spelled out: `(address,uint256)[]`. */
function canonicalType(parameter: AbiParameter): string {
  if (!parameter.type.startsWith("tuple")) return parameter.type;
  const components = "components" in parameter ? parameter.components : [];
  return `(${components.map(canonicalType).join(",")})${parameter.type.slice("tuple".length)}`;
}

/** `kind name(types)` of each ABI item of the given kinds, sorted. */
function signatures(abi: Abi, kinds: Abi[number]["type"][]): string[] {
  return abi
    .filter((item) => kinds.includes(item.type))
    .map((item) => {
      const name = "name" in item ? item.name : "";
      const inputs = "inputs" in item ? item.inputs : [];
      return `${item.type} ${name}(${inputs.map(canonicalType).join(",")})`;
    })
    .sort();
}

let cacheDir: string;
let coldLines: CacheLine[];
let artifacts: DevnetArtifacts;

before(async () => {
  cacheDir = mkdtempSync(join(tmpdir(), "tollgate-contracts-"));
  const { logger, lines } = recordingLogger();
  artifacts = await compileContracts({ cacheDir, logger });
  coldLines = lines;
});

after(() => rmSync(cacheDir, { recursive: true, force: true }));

test("compiles every devnet contract to non-empty creation and runtime code", () => {
  assert.deepEqual(coldLines, [
    { unit: "permit2", cache: "miss" },
    { unit: "tollgate", cache: "miss" },
    { unit: "plain-token", cache: "miss" },
  ]);
  for (const [name, artifact] of Object.entries(artifacts)) {
    assert.match(artifact.bytecode, /^0x([0-9a-f]{2})+$/, `${name} creation code`);
    assert.match(artifact.deployedBytecode, /^0x([0-9a-f]{2})+$/, `${name} runtime code`);
    assert.ok(artifact.abi.length > 0, `${name} ABI`);
  }
});

test("contracts placed by anvil_setCode carry no immutables", () => {
  for (const name of ["X402UptoPermit2Proxy", "X402ExactPermit2Proxy", "Multicall3"] as const) {
    assert.deepEqual(artifacts[name].immutableReferences, {}, name);
  }
});

for (const [name, reference] of [
  ["X402UptoPermit2Proxy", x402UptoPermit2ProxyABI],
  ["X402ExactPermit2Proxy", x402ExactPermit2ProxyABI],
] as const) {
  test(`${name} has exactly the functions, events and errors of the @x402/evm ABI`, () => {
    const kinds: Abi[number]["type"][] = ["function", "event", "error"];
    assert.deepEqual(signatures(artifacts[name].abi, kinds), signatures(reference as Abi, kinds));
  });

  test(`${name} names its structs as the @x402/evm ABI does`, () => {
    const internalTypes = (abi: Abi) =>
      JSON.stringify(abi)
        .match(/"internalType":"(struct|contract) [^"]+"/g)
        ?.sort();
    assert.deepEqual(internalTypes(artifacts[name].abi), internalTypes(reference as Abi));
  });
}

test("TestUSDC offers every EIP-3009 function the @x402/evm facilitator calls", () => {
  const ours = new Set(signatures(artifacts.TestUSDC.abi, ["function"]));
  for (const signature of signatures(eip3009ABI as Abi, ["function"])) {
    assert.ok(ours.has(signature), `TestUSDC lacks ${signature}`);
  }
});

test("a second call is served from the cache with identical artifacts", async () => {
  const { logger, lines } = recordingLogger();
  const cached = await compileContracts({ cacheDir, logger });
  assert.deepEqual(lines, [
    { unit: "permit2", cache: "hit" },
    { unit: "tollgate", cache: "hit" },
    { unit: "plain-token", cache: "hit" },
  ]);
  assert.deepEqual(cached, artifacts);
});

test("recompiles only the unit whose cache key no longer matches", async () => {
  const cachePath = join(cacheDir, "tollgate.json");
  const cacheFile = JSON.parse(readFileSync(cachePath, "utf8"));
  writeFileSync(cachePath, JSON.stringify({ ...cacheFile, key: "0".repeat(64) }));
  const { logger, lines } = recordingLogger();
  const recompiled = await compileContracts({ cacheDir, logger });
  assert.deepEqual(lines, [
    { unit: "permit2", cache: "hit" },
    { unit: "tollgate", cache: "miss" },
    { unit: "plain-token", cache: "hit" },
  ]);
  assert.deepEqual(recompiled, artifacts);
});
