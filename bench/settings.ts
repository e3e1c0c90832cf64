// What the bench runs: backend profiles, prices, sample counts (full and --quick).

/** One controllable backend: a fixed token rate and answer length. */
export type BackendProfile = {
  /** The model id that routes to this backend (through Tollgate and the official middleware). */
  model: string;
  tokensPerSecond: number;
  responseTokens: number;
  purpose: string;
};

export const backendProfiles = {
  latency: {
    model: "bench-latency",
    tokensPerSecond: 0,
    responseTokens: 16,
    purpose: "non-streaming latency: 16 tokens, no pacing, so billing overhead is not hidden by generation",
  },
  streaming: {
    model: "bench-streaming",
    tokensPerSecond: 50,
    responseTokens: 50,
    purpose:
      "streaming TTFT, total time and paid requests/s: 50 tokens at 50 tok/s (1 s of generation, first token at 20 ms)",
  },
} as const satisfies Record<string, BackendProfile>;

export type ProfileName = keyof typeof backendProfiles;

/** Prices of every bench model, atomic units per 1M tokens (USDC: $3 in, $15 out). */
export const benchPrices = { inputPerMTokAtomic: 3_000_000n, outputPerMTokAtomic: 15_000_000n };

/** The output limit every bench request asks for (above every profile's answer length). */
export const benchMaxTokens = 64;

/** Receipt polling of the facilitators (ms); anvil mines one block per transaction. */
export const pollingIntervalMs = 20;

export type SampleCounts = {
  warmup: number;
  latencyRequests: number;
  ttftRequests: number;
  /** Requests per worker at each concurrency (total = concurrency × this). */
  rpsRequestsPerWorker: Record<1 | 8 | 32, number>;
  /** Interleaving rounds: each variant gets its share of a measurement in turn. */
  rounds: number;
  microDurationMs: number;
  verifySamples: number;
  settleSamples: number;
  concurrentSettles: number;
  ledgerSamples: number;
};

export const fullCounts: SampleCounts = {
  warmup: 5,
  latencyRequests: 200,
  ttftRequests: 60,
  rpsRequestsPerWorker: { 1: 8, 8: 4, 32: 3 },
  rounds: 4,
  microDurationMs: 2_000,
  verifySamples: 200,
  settleSamples: 40,
  concurrentSettles: 64,
  ledgerSamples: 200,
};

export const quickCounts: SampleCounts = {
  warmup: 3,
  latencyRequests: 40,
  ttftRequests: 12,
  rpsRequestsPerWorker: { 1: 3, 8: 2, 32: 1 },
  rounds: 2,
  microDurationMs: 700,
  verifySamples: 40,
  settleSamples: 10,
  concurrentSettles: 32,
  ledgerSamples: 40,
};

/** Buyers the throughput runs spread over, one per worker, so nonces and balances never collide. */
export const maxConcurrency = 32;

/**
 * The gateway's payment channels in the bench: a $1 deposit per channel; claims and settles only
 * when the bench asks (long intervals), so their transactions are the ones it measures.
 */
export const benchChannels = {
  minDepositAtomic: 1_000_000n,
  claimIntervalSeconds: 3_600,
  settleIntervalSeconds: 3_600,
  withdrawDelaySeconds: 86_400,
};

/** Requests per channel over which its deposit, claim and settle gas is spread in the report. */
export const amortisationRequests = [100, 1_000] as const;

/** Request prices the seller's gas is set against (USD). */
export const revenuePerRequestUsd = [0.0001, 0.001] as const;

/** Gas prices and native token prices the gas is costed at. */
export const gasPrices = [
  { chain: "Base", gasPriceGwei: 0.002, nativeToken: "ETH", nativeUsd: 3_000 },
  { chain: "Polygon PoS", gasPriceGwei: 30, nativeToken: "POL", nativeUsd: 0.4 },
] as const;
