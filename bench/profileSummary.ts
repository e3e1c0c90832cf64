// Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): top self-time functions and where the time
// goes by package. Usable alone: `npx tsx bench/profileSummary.ts FILE.cpuprofile [top]`.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

type ProfileNode = {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
};
type CpuProfile = {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
};

export type ProfileEntry = { name: string; selfMs: number; share: number };
export type ProfileSummary = {
  totalMs: number;
  busyMs: number;
  functions: ProfileEntry[];
  packages: ProfileEntry[];
  /** Self time by what the serving process was doing (see `activityOf`). */
  activities: ProfileEntry[];
};

const special = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"]);

/** Where a script URL belongs: an npm package, a Tollgate folder, node internals. */
function packageOf(url: string, functionName: string): string {
  if (special.has(functionName)) return functionName;
  if (url === "") return "(native / V8)";
  if (url.startsWith("node:")) return "node internals";
  const modules = url.lastIndexOf("node_modules/");
  if (modules >= 0) {
    const rest = url.slice(modules + "node_modules/".length).split("/");
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const src = url.indexOf("/src/");
  if (src >= 0) return `tollgate src/${url.slice(src + 5).split("/")[0]}`;
  const bench = url.indexOf("/bench/");
  if (bench >= 0) return "tollgate bench";
  return url;
}

type Frame = ProfileNode["callFrame"];

/**
 * What a sample was doing, judged from its own frame and its callers: a socket write is charged to
 * whoever wrote (chain RPC client, response to a buyer, backend request), file I/O under PGlite to the
 * ledger, and so on.
 */
function activityOf(frame: Frame, callers: readonly Frame[]): string {
  const { functionName, url } = frame;
  const within = (part: string) => callers.some((caller) => caller.url.includes(part));
  if (functionName === "(garbage collector)") return "garbage collection";
  if (functionName === "(program)") return "(program)";
  if (url.includes("@electric-sql/pglite") || url.startsWith("wasm://") || within("@electric-sql/pglite"))
    return "ledger: PGlite (WASM PostgreSQL, its file I/O)";
  if (functionName === "writev" || functionName === "writeBuffer" || functionName === "writeUtf8String") {
    if (within("node:_http_client")) return "socket writes: JSON-RPC requests to the chain node";
    if (within("undici")) return "socket writes: requests to the backend (fetch)";
    if (within("node:_http_outgoing")) return "socket writes: responses to buyers (SSE chunks, JSON, 402)";
    if (within("node:fs")) return "file writes: logging";
    return "socket writes: other";
  }
  if (url.includes("@noble/")) return "signatures: secp256k1 and keccak (@noble)";
  if (url.includes("/viem/")) return "viem: ABI, typed data, RPC client";
  if (functionName === "postMessage" || url.includes("internal/modules/esm"))
    return "module loader round trips (viem imports noble on every signature call)";
  if (functionName === "dispatch" && within("node:inspector")) return "the profiler itself";
  if (url.includes("/zod/")) return "zod";
  if (url.includes("/hono/") || url.includes("@hono/")) return "hono";
  if (url.includes("pino") || url.includes("sonic-boom")) return "logging";
  if (url.includes("/@x402/")) return "x402";
  if (url.includes("/src/")) return "tollgate src";
  if (url.includes("undici") || url.includes("webstreams")) return "fetch and web streams (backend proxy)";
  if (url.startsWith("node:") || url === "") return "node: http, streams, timers, async hooks";
  return "other";
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf("node_modules/");
  if (modules >= 0) return url.slice(modules + "node_modules/".length);
  const src = url.lastIndexOf("/src/");
  if (src >= 0) return url.slice(src + 1);
  return url.replace(/^file:\/\//, "");
}

/** Self time per function and per package; `(idle)` counts in the total but not in the busy time. */
export function summarizeProfile(profile: CpuProfile, top = 15): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const callersOf = (id: number): Frame[] => {
    const frames: Frame[] = [];
    for (let at = parentOf.get(id); at !== undefined && frames.length < 16; at = parentOf.get(at)) {
      const caller = byId.get(at);
      if (caller) frames.push(caller.callFrame);
    }
    return frames;
  };
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, deltas[i] ?? 0));
  }
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  const activities = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const name = special.has(functionName)
      ? functionName
      : `${functionName || "(anonymous)"} ${shortUrl(url)}:${lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    const pkg = packageOf(url, functionName);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
    const activity = activityOf(node.callFrame, callersOf(id));
    activities.set(activity, (activities.get(activity) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const ranked = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  return {
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    functions: ranked(functions),
    packages: ranked(packages),
    activities: ranked(activities),
  };
}

/** Reads and summarises one `.cpuprofile` file. */
export async function summarizeProfileFile(
  file: string,
  top = 15,
): Promise<{ file: string; summary: ProfileSummary }> {
  return { file, summary: summarizeProfile(JSON.parse(await readFile(file, "utf8")) as CpuProfile, top) };
}

/** Summarises the busiest `.cpuprofile` in `dir` (with `node --cpu-prof`, the main thread's). */
export async function summarizeProfileDir(
  dir: string,
  top = 15,
): Promise<{ file: string; summary: ProfileSummary }> {
  const files = (await readdir(dir)).filter((name) => name.endsWith(".cpuprofile"));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  let best: { file: string; summary: ProfileSummary } | undefined;
  for (const name of files) {
    const candidate = await summarizeProfileFile(join(dir, name), top);
    if (!best || candidate.summary.busyMs > best.summary.busyMs) best = candidate;
  }
  return best!;
}

/** The summary as text: the busy share of each top entry. */
export function formatProfileSummary({ file, summary }: { file: string; summary: ProfileSummary }): string {
  const line = (entry: ProfileEntry) =>
    `  ${entry.selfMs.toFixed(0).padStart(8)} ms  ${(entry.share * 100).toFixed(1).padStart(5)}%  ${entry.name}`;
  return [
    `CPU profile ${file}: ${summary.totalMs.toFixed(0)} ms sampled, ${summary.busyMs.toFixed(0)} ms busy (not idle)`,
    "self time by activity:",
    ...summary.activities.map(line),
    "top self time by package / area:",
    ...summary.packages.map(line),
    "top self time by function:",
    ...summary.functions.map(line),
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [path, top] = process.argv.slice(2);
  if (!path) {
    console.error("usage: tsx bench/profileSummary.ts FILE.cpuprofile|DIR [top]");
    process.exit(2);
  }
  const count = Number(top ?? 15);
  const result = path.endsWith(".cpuprofile")
    ? await summarizeProfileFile(path, count)
    : await summarizeProfileDir(path, count);
  console.log(formatProfileSummary(result));
}
