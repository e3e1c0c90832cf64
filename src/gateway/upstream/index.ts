export type { BackendEndpoint } from "./BackendCall.js";
export {
  type ChatCompletion,
  type ChatCompletionChunk,
  type Completion,
  type CompletionChunk,
  chatCompletionChunkSchema,
  chatCompletionSchema,
  completionChunkSchema,
  completionSchema,
  type EmbeddingsResponse,
  embeddingsResponseSchema,
  type UpstreamUsage,
  upstreamUsageSchema,
} from "./backendSchemas.js";
export {
  type CreateUpstreamClientParameters,
  createUpstreamClient,
  defaultUpstreamTimeoutMs,
  type UpstreamCallOptions,
  type UpstreamClient,
  type UpstreamRequestBody,
} from "./createUpstreamClient.js";
export { type ServerSentEvent, SseDecoder } from "./SseDecoder.js";
export { type MeteredUsage, StreamMeter, type StreamMeterParameters } from "./StreamMeter.js";
export type {
  UpstreamChunkEvent,
  UpstreamEndEvent,
  UpstreamStream,
  UpstreamStreamEvent,
} from "./streamBackendChunks.js";
export type { StreamFailurePhase } from "./upstreamErrors.js";
