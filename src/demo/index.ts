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
  type FakeGarbage,
  type FakeGeneration,
  type FakeInferenceServer,
  type FakeServedRequest,
  type FakeServerBehaviour,
  type FakeServerMisbehaviour,
  type OutputLimitField,
  type StartFakeInferenceServerParameters,
  startFakeInferenceServer,
} from "./fakeInferenceServer.js";
export { type GenerationRequest, promptTexts } from "./openAiRequests.js";
export { outputLimitFields, requestedMaxTokens } from "./outputLimit.js";
export { splitIntoTokens } from "./splitIntoTokens.js";
