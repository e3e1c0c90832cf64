import type { Devnet } from "../devnet/index.js";
import { type GatewayConfig, type GatewayConfigInput, parseGatewayConfig } from "../gateway/index.js";

export type DevGatewayConfigParameters = {
  devnet: Devnet;
  /** The demo backend's URL, or the upstream's. */
  backendUrl: string;
  apiKey?: string | undefined;
  modelId: string;
  /** Set when the model is an upstream's: it is then assumed to speak chat only, and no demo models are added. */
  upstream?: string | undefined;
  host: string;
  port: number;
  /** Where the ledger is kept, across runs. */
  dataDir: string;
  dashboardToken: string;
};

/** The gateway `tollgate dev` runs: the devnet's coin and accounts, the demo models, channels with short intervals. */
export function devGatewayConfig({
  devnet,
  backendUrl,
  apiKey,
  modelId,
  upstream,
  host,
  port,
  dataDir,
  dashboardToken,
}: DevGatewayConfigParameters): GatewayConfig {
  const input: GatewayConfigInput = {
    network: devnet.network,
    rpcUrl: devnet.rpcUrl,
    asset: devnet.contracts.usdc,
    assetDomain: { name: "USD Coin", version: "2" },
    payTo: devnet.accounts.payTo.address,
    facilitator: { privateKey: devnet.accounts.facilitator.privateKey },
    server: { host, port },
    ledger: { dataDir },
    receipts: { signingKey: devnet.accounts.payTo.privateKey },
    dashboard: { enabled: true, token: dashboardToken },
    // Short intervals so channel payments reach payTo within seconds.
    channels: {
      claimIntervalSeconds: 2,
      settleIntervalSeconds: 3,
      minClaimAtomic: 0,
      withdrawDelaySeconds: 900,
    },
    models: [
      {
        id: modelId,
        // The demo backend speaks the Messages API too; an upstream is assumed to speak chat only.
        backend: {
          baseUrl: backendUrl,
          apiKey,
          ...(upstream ? {} : { apis: ["chat", "messages", "responses"] }),
        },
        inputPrice: "$0.50",
        outputPrice: "$1.50",
        maxOutputTokens: 1024,
        description: upstream
          ? `${modelId} via ${upstream}`
          : "Tollgate's built-in demo model (not a real LLM)",
      },
      // The demo backend also embeds, moderates, ranks, speaks and draws, so every route can be tried on the quick start.
      ...(upstream
        ? []
        : [
            {
              id: `${modelId}-embedding`,
              kind: "embedding" as const,
              backend: { baseUrl: backendUrl },
              inputPrice: "$0.02",
              description: "Tollgate's built-in demo embeddings (deterministic vectors)",
            },
            {
              id: `${modelId}-moderation`,
              kind: "moderation" as const,
              backend: { baseUrl: backendUrl },
              inputPrice: "$0.01",
              fixedFee: "$0.0001",
              description: "Tollgate's built-in demo moderation (flags a few words per category)",
            },
            {
              id: `${modelId}-rerank`,
              kind: "rerank" as const,
              backend: { baseUrl: backendUrl },
              inputPrice: "$0.02",
              description:
                "Tollgate's built-in demo reranker (scores documents by the query's words they hold)",
            },
            {
              id: `${modelId}-tts`,
              kind: "speech" as const,
              backend: { baseUrl: backendUrl },
              // OpenAI's tts-1 price.
              prices: { input_characters: "$15" },
              description: "Tollgate's built-in demo speech (a tone per character, as WAV)",
            },
            {
              id: `${modelId}-stt`,
              kind: "transcription" as const,
              backend: { baseUrl: backendUrl },
              // OpenAI's whisper-1 price, $0.006 / minute, per second.
              prices: { input_audio_seconds: "$0.0001" },
              description: "Tollgate's built-in demo transcription (a sentence naming the file's size)",
            },
            {
              id: `${modelId}-image`,
              kind: "image" as const,
              backend: { baseUrl: backendUrl },
              imagePrices: { "256x256": "$0.01", "1024x1024": "$0.04" },
              description: "Tollgate's built-in demo images (small generated PNGs)",
            },
          ]),
    ],
  };
  return parseGatewayConfig(input);
}
