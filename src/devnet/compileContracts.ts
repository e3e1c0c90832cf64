import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Abi } from "viem";
import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import type { ContractArtifact, DevnetArtifacts } from "./artifacts.js";

export type CompileContractsParameters = {
  /** Where compiled units are cached; defaults to `node_modules/.cache/tollgate/contracts` in the package root. */
  cacheDir?: string;
  logger?: Logger;
};

export type CompileContractsReturnType = DevnetArtifacts;

/**
 * Compiles Permit2 (from its published sources) and Tollgate's devnet contracts with solc-js, or
 * loads them from the cache when compiler, settings and every source file are unchanged.
 *
 * Each compile unit logs one `info` line with `cache: "hit" | "miss"`.
 *
 * @example
 * const artifacts = await compileContracts({ logger });
 * await client.request({ method: "anvil_setCode", params: [PERMIT2_ADDRESS, artifacts.Permit2.deployedBytecode] });
 */
export async function compileContracts(
  parameters: CompileContractsParameters = {},
): Promise<CompileContractsReturnType> {
  const packageRoot = findPackageRoot();
  const cacheDir =
    parameters.cacheDir ?? join(packageRoot, "node_modules", ".cache", "tollgate", "contracts");
  const logger = parameters.logger ?? silentLogger;
  const artifacts: Partial<DevnetArtifacts> = {};
  for (const unit of compileUnits) {
    Object.assign(artifacts, loadOrCompileUnit({ unit, packageRoot, cacheDir, logger }));
  }
  for (const name of artifactNames) {
    if (artifacts[name] === undefined) {
      throw new TollgateError({
        code: "TOLLGATE_COMPILE_FAILED",
        shortMessage: `No artifact produced for ${name}`,
        details: { contract: name },
      });
    }
  }
  return artifacts as DevnetArtifacts;
}

type ArtifactName = keyof DevnetArtifacts;

type CompileUnit = {
  /** Names the cache file. */
  name: string;
  /** npm package of the solc-js build to use. */
  compilerPackage: "solc" | "solc-permit2";
  /** Source unit names handed to solc; imports are resolved from them. */
  rootSources: string[];
  settings: Record<string, unknown>;
  contracts: Partial<Record<ArtifactName, { source: string; contract: string }>>;
};

const outputs = [
  "abi",
  "evm.bytecode.object",
  "evm.deployedBytecode.object",
  "evm.deployedBytecode.immutableReferences",
];

const permit2Source = "@uniswap/v4-periphery/lib/permit2/src/Permit2.sol";

const tollgateSources = [
  "contracts/X402UptoPermit2Proxy.sol",
  "contracts/X402ExactPermit2Proxy.sol",
  "contracts/TestUSDC.sol",
  "contracts/Multicall3.sol",
  "contracts/test/HostileToken.sol",
  "contracts/batch-settlement/X402BatchSettlement.sol",
  "contracts/batch-settlement/ERC3009DepositCollector.sol",
  "contracts/batch-settlement/Permit2DepositCollector.sol",
  "contracts/test/HostileChannelToken.sol",
];

const plainTokenSource = "contracts/PlainTestToken.sol";

const compileUnits: CompileUnit[] = [
  {
    name: "permit2",
    compilerPackage: "solc-permit2",
    rootSources: [permit2Source],
    // Permit2's own foundry.toml: solc 0.8.17, via-IR, 1,000,000 optimizer runs, no metadata hash.
    settings: {
      remappings: ["solmate/=@uniswap/v4-periphery/lib/permit2/lib/solmate/"],
      optimizer: { enabled: true, runs: 1_000_000 },
      viaIR: true,
      metadata: { bytecodeHash: "none" },
      outputSelection: { [permit2Source]: { Permit2: outputs } },
    },
    contracts: { Permit2: { source: permit2Source, contract: "Permit2" } },
  },
  {
    name: "tollgate",
    compilerPackage: "solc",
    rootSources: tollgateSources,
    // Cancun is the oldest fork with transient storage, which the proxies' reentrancy guards use.
    settings: {
      optimizer: { enabled: true, runs: 10_000 },
      evmVersion: "cancun",
      metadata: { bytecodeHash: "none" },
      outputSelection: Object.fromEntries(tollgateSources.map((source) => [source, { "*": outputs }])),
    },
    contracts: {
      X402UptoPermit2Proxy: {
        source: "contracts/X402UptoPermit2Proxy.sol",
        contract: "x402UptoPermit2Proxy",
      },
      X402ExactPermit2Proxy: {
        source: "contracts/X402ExactPermit2Proxy.sol",
        contract: "x402ExactPermit2Proxy",
      },
      TestUSDC: { source: "contracts/TestUSDC.sol", contract: "TestUSDC" },
      Multicall3: { source: "contracts/Multicall3.sol", contract: "Multicall3" },
      HostileToken: { source: "contracts/test/HostileToken.sol", contract: "HostileToken" },
      X402BatchSettlement: {
        source: "contracts/batch-settlement/X402BatchSettlement.sol",
        contract: "x402BatchSettlement",
      },
      ERC3009DepositCollector: {
        source: "contracts/batch-settlement/ERC3009DepositCollector.sol",
        contract: "ERC3009DepositCollector",
      },
      Permit2DepositCollector: {
        source: "contracts/batch-settlement/Permit2DepositCollector.sol",
        contract: "Permit2DepositCollector",
      },
      HostileChannelToken: {
        source: "contracts/test/HostileChannelToken.sol",
        contract: "HostileChannelToken",
      },
    },
  },
  {
    // A unit of its own, so that adding it left the cached "tollgate" unit's key unchanged.
    name: "plain-token",
    compilerPackage: "solc",
    rootSources: [plainTokenSource],
    settings: {
      optimizer: { enabled: true, runs: 10_000 },
      evmVersion: "cancun",
      metadata: { bytecodeHash: "none" },
      outputSelection: { [plainTokenSource]: { "*": outputs } },
    },
    contracts: { PlainTestToken: { source: plainTokenSource, contract: "PlainTestToken" } },
  },
];

const artifactNames = compileUnits.flatMap((unit) => Object.keys(unit.contracts) as ArtifactName[]);

type CacheFile = {
  key: string;
  compiler: string;
  /** Every source unit the compile read, imports included. */
  sources: string[];
  artifacts: Partial<Record<ArtifactName, ContractArtifact>>;
};

type UnitContext = { unit: CompileUnit; packageRoot: string; cacheDir: string; logger: Logger };

function loadOrCompileUnit({ unit, packageRoot, cacheDir, logger }: UnitContext) {
  const started = performance.now();
  const compiler = `${unit.compilerPackage}@${compilerVersion(unit.compilerPackage)}`;
  const cachePath = join(cacheDir, `${unit.name}.json`);
  const cached = readCacheFile(cachePath);
  if (cached !== undefined) {
    const key = cacheKey(unit, compiler, cached.sources, packageRoot);
    if (key === cached.key) {
      logger.info(
        { unit: unit.name, cache: "hit", ms: Math.round(performance.now() - started) },
        "devnet contracts loaded from cache",
      );
      return cached.artifacts;
    }
  }
  const { artifacts, sources } = compileUnit(unit, packageRoot, logger);
  const key = cacheKey(unit, compiler, sources, packageRoot) ?? "";
  writeCacheFile(cachePath, { key, compiler, sources, artifacts });
  logger.info(
    { unit: unit.name, cache: "miss", compiler, ms: Math.round(performance.now() - started) },
    "devnet contracts compiled",
  );
  return artifacts;
}

/** sha256 over compiler, settings, root list and the content of every source the unit reads. */
function cacheKey(
  unit: CompileUnit,
  compiler: string,
  sources: string[],
  packageRoot: string,
): string | undefined {
  const contentHashes: [string, string][] = [];
  for (const source of [...sources].sort()) {
    const path = resolveSourcePath(source, packageRoot);
    // A source that vanished means the cached build can no longer be trusted.
    if (path === undefined) return undefined;
    contentHashes.push([source, sha256(readFileSync(path))]);
  }
  const material = {
    compiler,
    settings: unit.settings,
    rootSources: unit.rootSources,
    sources: contentHashes,
  };
  return sha256(JSON.stringify(material));
}

function compileUnit(unit: CompileUnit, packageRoot: string, logger: Logger) {
  const solc = loadCompiler(unit.compilerPackage);
  const sources: Record<string, { content: string }> = {};
  for (const source of unit.rootSources) {
    const path = resolveSourcePath(source, packageRoot);
    if (path === undefined) {
      throw new TollgateError({
        code: "TOLLGATE_COMPILE_FAILED",
        shortMessage: `Source not found: ${source}`,
        details: { unit: unit.name, source, packageRoot },
      });
    }
    sources[source] = { content: readFileSync(path, "utf8") };
  }
  const input = { language: "Solidity", sources, settings: unit.settings };
  const findImports = (source: string) => {
    const path = resolveSourcePath(source, packageRoot);
    return path === undefined ? { error: `not found: ${source}` } : { contents: readFileSync(path, "utf8") };
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports })) as SolcOutput;

  const diagnostics = output.errors ?? [];
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error");
  if (errors.length > 0) {
    throw new TollgateError({
      code: "TOLLGATE_COMPILE_FAILED",
      shortMessage: `solc failed on ${unit.name}: ${errors[0]?.message}`,
      details: { unit: unit.name, errors: errors.map((error) => error.formattedMessage ?? error.message) },
    });
  }
  for (const warning of diagnostics) {
    logger.debug({ unit: unit.name, warning: warning.formattedMessage ?? warning.message }, "solc warning");
  }

  const artifacts: Partial<Record<ArtifactName, ContractArtifact>> = {};
  for (const [name, { source, contract }] of Object.entries(unit.contracts)) {
    const compiled = output.contracts?.[source]?.[contract];
    if (compiled === undefined) {
      throw new TollgateError({
        code: "TOLLGATE_COMPILE_FAILED",
        shortMessage: `solc produced no ${contract} in ${source}`,
        details: { unit: unit.name, source, contract },
      });
    }
    artifacts[name as ArtifactName] = {
      contractName: contract,
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
      immutableReferences: compiled.evm.deployedBytecode.immutableReferences ?? {},
    };
  }
  return { artifacts, sources: Object.keys(output.sources ?? {}) };
}

type SolcOutput = {
  errors?: { severity: "error" | "warning" | "info"; message: string; formattedMessage?: string }[];
  sources?: Record<string, unknown>;
  contracts?: Record<
    string,
    Record<
      string,
      {
        abi: Abi;
        evm: {
          bytecode: { object: string };
          deployedBytecode: { object: string; immutableReferences?: ContractArtifact["immutableReferences"] };
        };
      }
    >
  >;
};

type SolcModule = {
  compile(
    input: string,
    callbacks: { import: (path: string) => { contents: string } | { error: string } },
  ): string;
};

const require = createRequire(import.meta.url);

// Loaded only on a cache miss: the cached path never pays for the compiler.
function loadCompiler(compilerPackage: CompileUnit["compilerPackage"]): SolcModule {
  return require(compilerPackage) as SolcModule;
}

function compilerVersion(compilerPackage: CompileUnit["compilerPackage"]): string {
  const manifest = JSON.parse(readFileSync(require.resolve(`${compilerPackage}/package.json`), "utf8"));
  return String(manifest.version);
}

/** Maps a solc source unit name to a file: the package root first, then node_modules upwards. */
function resolveSourcePath(source: string, packageRoot: string): string | undefined {
  if (source.startsWith("/") || source.split("/").includes("..")) return undefined;
  const local = join(packageRoot, source);
  if (existsSync(local)) return local;
  for (let dir = packageRoot; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", source);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function findPackageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const manifestPath = join(dir, "package.json");
    if (existsSync(manifestPath) && JSON.parse(readFileSync(manifestPath, "utf8")).name === "tollgate")
      return dir;
    if (dirname(dir) === dir) {
      throw new TollgateError({
        code: "TOLLGATE_COMPILE_FAILED",
        shortMessage: "Cannot find the tollgate package root",
        details: { start },
      });
    }
  }
}

function readCacheFile(path: string): CacheFile | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as CacheFile;
    return typeof parsed.key === "string" && Array.isArray(parsed.sources) ? parsed : undefined;
  } catch {
    // Missing or unreadable: treated as a miss and rewritten.
    return undefined;
  }
}

function writeCacheFile(path: string, content: CacheFile): void {
  mkdirSync(dirname(path), { recursive: true });
  // Write then rename, so a concurrent reader never sees half a file.
  const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(temporary, JSON.stringify(content));
  renameSync(temporary, path);
}

function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}
