import { countPromptTokens } from "./countPromptTokens.js";
import { demoAnswerText } from "./demoAnswer.js";
import { type FakeServerBehaviour, startFakeInferenceServer } from "./fakeInferenceServer.js";
import { promptTexts } from "./openAiRequests.js";
import { splitIntoTokens } from "./splitIntoTokens.js";

/** The one model the demo backend serves. */
export const demoModelId = "tollgate-demo";

export type StartDemoBackendParameters = {
  /** Default 0: any free port. */
  port?: number;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 50; 0 streams as fast as the client reads. */
  tokensPerSecond?: number;
  /** The tokenizer the usage numbers are counted with; the gateway passes the same one it meters with. */
  countTokens: (text: string) => number;
};

export type DemoBackend = {
  /** Base URL including `/v1`. */
  url: string;
  model: string;
  close: () => Promise<void>;
};

/**
 * The built-in backend of `tollgate dev`: an OpenAI-compatible server for model `tollgate-demo`
 * that streams a few paragraphs of English chosen from the prompt, one token per chunk, and
 * reports true usage as `countTokens` counts it.
 *
 * @example
 * const demo = await startDemoBackend({ countTokens });
 * const upstream = createUpstreamClient({ baseUrl: demo.url });
 */
export async function startDemoBackend(parameters: StartDemoBackendParameters): Promise<DemoBackend> {
  const { countTokens } = parameters;
  // There are only a handful of distinct answers; split each into tokens once.
  const answerTokens = new Map<string, string[]>();
  const tokensOf = (answer: string): string[] => {
    let tokens = answerTokens.get(answer);
    if (tokens === undefined) {
      tokens = splitIntoTokens(answer, countTokens);
      answerTokens.set(answer, tokens);
    }
    return tokens;
  };
  const behaviour: FakeServerBehaviour = {
    tokensPerSecond: parameters.tokensPerSecond ?? 50,
    firstTokenDelayMs: 0,
    reportUsage: true,
    failBeforeOutput: false,
    failStatus: 500,
    failAfterChunks: undefined,
  };
  const server = await startFakeInferenceServer({
    host: parameters.host,
    port: parameters.port,
    models: [demoModelId],
    behaviour: () => behaviour,
    countInputTokens: (inputs) => inputs.reduce((sum, input) => sum + countTokens(input), 0),
    generate: (request) => ({
      promptTokens: countPromptTokens(request, countTokens),
      tokens: tokensOf(demoAnswerText(promptTexts(request).join("\n"))),
      countCompletionTokens: countTokens,
    }),
  });
  return { url: server.url, model: demoModelId, close: server.close };
}
