export { countPromptTokens } from "./countPromptTokens.js";
export { demoAnswerText, demoParagraphs } from "./demoAnswer.js";
export {
  type DemoBackend,
  demoModelId,
  type StartDemoBackendParameters,
  startDemoBackend,
} from "./demoBackend.js";
export { deterministicEmbedding } from "./deterministicEmbedding.js";
export {
  type FakeGeneration,
  type FakeInferenceServer,
  type FakeServedRequest,
  type FakeServerBehaviour,
  type StartFakeInferenceServerParameters,
  startFakeInferenceServer,
} from "./fakeInferenceServer.js";
export { type GenerationRequest, promptTexts, requestedMaxTokens } from "./openAiRequests.js";
export { splitIntoTokens } from "./splitIntoTokens.js";
