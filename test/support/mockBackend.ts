import {
  type FakeServedRequest,
  type FakeServerBehaviour,
  type FakeServerMisbehaviour,
  type GenerationRequest,
  promptTexts,
  startFakeInferenceServer,
} from "../../src/demo/index.js";

/**
 * The knobs of the mock backend. Each request reads them once when it arrives, so `set()` between
 * requests never changes one already running. The misbehaviours (`ignoreOutputLimit`,
 * `outputLimitField`, `usageOverride`, `reportPromptUsage`, `stallAfterChunks`, `holdAfterChunks`, `stallBeforeHeaders`,
 * `garbage`, `errorAfterChunks`, `laxStream`, `rateLimit`, `tokensPerChunk`, `unclosedLastEvent`, `messageExtras`, `imageAnswer`) are documented on `FakeServerMisbehaviour`;
 * their defaults here keep the mock honest.
 */
export type MockBackendControls = FakeServerBehaviour &
  FakeServerMisbehaviour & {
    /** Tokens in each choice of an answer, before the request's output limit cuts it. */
    responseTokens: number;
    /** The answer's tokens, each its own chunk, instead of `responseTokens` of the mock's words. */
    answerTokens?: readonly string[] | undefined;
  };

/** What the mock saw of one request: body, arrival, tokens sent, whether the client aborted. */
export type MockBackendRequest = FakeServedRequest;

export type StartMockBackendParameters = Partial<MockBackendControls> & {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
};

export type MockBackend = {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:41234/v1`. */
  url: string;
  /** Changes some controls for the requests that arrive from now on. */
  set: (controls: Partial<MockBackendControls>) => void;
  /** The controls in force. */
  readonly controls: Readonly<MockBackendControls>;
  /** Every request received (any route), oldest first; records keep updating while requests run. */
  readonly requests: readonly MockBackendRequest[];
  /** Only POST /v1/chat/completions, /v1/completions and /v1/embeddings. */
  readonly inferenceRequests: readonly MockBackendRequest[];
  clearRequests: () => void;
  /** Resolves once every request has ended and the mock has seen its connection close. */
  whenIdle: () => Promise<void>;
  close: () => Promise<void>;
};

/** The model the mock lists; it answers for any model name and echoes it back. */
export const mockModelId = "mock-model";

export const defaultMockBackendControls: Readonly<MockBackendControls> = {
  tokensPerSecond: 0,
  responseTokens: 16,
  reportUsage: true,
  failBeforeOutput: false,
  failStatus: 500,
  failAfterChunks: undefined,
  firstTokenDelayMs: 0,
  ignoreOutputLimit: false,
  outputLimitField: undefined,
  usageOverride: undefined,
  reportPromptUsage: true,
  stallAfterChunks: undefined,
  holdAfterChunks: undefined,
  stallBeforeHeaders: false,
  garbage: undefined,
  errorAfterChunks: undefined,
  laxStream: false,
  rateLimit: undefined,
  tokensPerChunk: undefined,
  unclosedLastEvent: undefined,
  messageExtras: undefined,
  imageAnswer: undefined,
};

/** Words of the mock's answers: each is one token of o200k_base, so the gateway's count of the text it forwards is exact. */
const MOCK_WORDS = [
  " quick",
  " brown",
  " fox",
  " jumps",
  " over",
  " the",
  " lazy",
  " dog",
  " and",
  " runs",
  " far",
  " away",
  " from",
  " home",
  " today",
];

/** Token `index` of every mock answer: "The", " quick", " brown", … (one token per chunk, one o200k token each). */
export function mockTokenText(index: number): string {
  return index === 0 ? "The" : (MOCK_WORDS[(index - 1) % MOCK_WORDS.length] as string);
}

/** The text of a mock answer of `tokens` tokens: "The quick brown fox …". */
export function mockCompletionText(tokens: number): string {
  return Array.from({ length: tokens }, (_, index) => mockTokenText(index)).join("");
}

/**
 * The mock's prompt-token rule: the number of whitespace-separated words in all prompt text (every
 * chat message's content, the completion prompt, or the embeddings input). No template overhead.
 */
export function mockPromptTokens(texts: readonly string[]): number {
  return texts.reduce((sum, text) => sum + (text.match(/\S+/g)?.length ?? 0), 0);
}

/**
 * Starts the tests' OpenAI-compatible backend on 127.0.0.1 (port 0 unless given). It speaks the
 * real wire format (see `startFakeInferenceServer`) and is steered by {@link MockBackendControls}.
 *
 * @example
 * const backend = await startMockBackend({ responseTokens: 5 });
 * after(() => backend.close());
 * backend.set({ failAfterChunks: 2 });
 */
export async function startMockBackend(parameters: StartMockBackendParameters = {}): Promise<MockBackend> {
  const { host, port, ...initial } = parameters;
  let controls: MockBackendControls = { ...defaultMockBackendControls, ...initial };
  const requests: MockBackendRequest[] = [];
  const server = await startFakeInferenceServer({
    host,
    port,
    models: [mockModelId],
    behaviour: () => controls,
    countInputTokens: mockPromptTokens,
    generate: (request: GenerationRequest) => {
      const responseTokens = controls.responseTokens;
      return {
        promptTokens: mockPromptTokens(promptTexts(request)),
        tokens:
          controls.answerTokens ?? Array.from({ length: responseTokens }, (_, index) => mockTokenText(index)),
      };
    },
    record: (request) => requests.push(request),
  });
  return {
    url: server.url,
    set: (changes) => {
      controls = { ...controls, ...changes };
    },
    get controls() {
      return controls;
    },
    requests,
    get inferenceRequests() {
      return requests.filter((request) => request.method === "POST");
    },
    clearRequests: () => {
      requests.length = 0;
    },
    whenIdle: server.whenIdle,
    close: server.close,
  };
}

/**
 * Holds every stream that starts from now on after `chunks` token chunks, until the returned
 * function is called: a test acts mid-stream at a known point, however slow the machine.
 */
export function holdStreams(backend: MockBackend, chunks: number): () => void {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  backend.set({ holdAfterChunks: { chunks, release: released } });
  return () => {
    backend.set({ holdAfterChunks: undefined });
    release();
  };
}
