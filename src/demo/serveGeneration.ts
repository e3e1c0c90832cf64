import type { ServerResponse } from "node:http";
import type { FakeServedRequest, FakeServerBehaviour } from "./fakeServerTypes.js";
import {
  errorEvent,
  firstErrorEvent,
  malformedSseLine,
  reportedUsage,
  stallUntilClosed,
} from "./misbehaviour.js";
import type { GenerationRequest } from "./openAiRequests.js";
import {
  type ResponseIdentity,
  type WireUsage,
  wireChunk,
  wireResponse,
  wireUsageChunk,
} from "./openAiWire.js";
import type { ChoicePlan, PlannedChoice } from "./planChoices.js";
import { sendJson } from "./sendJson.js";
import { dropConnection, sleepUntil, tokenDueAt, writeAndWait } from "./streamPacing.js";

// Serving one chat or text completion: choices, pacing, output limit, usage, injected failures and
// misbehaviours, client aborts.

/** One generation request being served. */
export type GenerationRun = {
  request: GenerationRequest;
  plan: ChoicePlan;
  behaviour: FakeServerBehaviour;
  response: ServerResponse;
  record: FakeServedRequest;
  closed: AbortSignal;
  identity: ResponseIdentity;
  /** The output limit of each choice; undefined when there is none or the server ignores it. */
  maxTokens: number | undefined;
  /** The client set `stream_options.include_usage`. */
  usageRequested: boolean;
  startedAt: number;
};

/** A choice being generated: its tokens so far and, once it has stopped, why. */
type ChoiceProgress = PlannedChoice & {
  tokens: Iterator<string>;
  text: string[];
  finishReason: string | undefined;
};

/**
 * Streams one token per chunk, the choices interleaved token by token, then each choice's closing
 * chunk, the usage chunk if asked for, and `[DONE]`.
 */
export async function streamGeneration(run: GenerationRun): Promise<void> {
  const { request, behaviour, response, record, closed, identity, usageRequested } = run;
  const endpoint = request.endpoint;
  response.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  record.status = 200;
  response.flushHeaders();
  if (behaviour.garbage === "error_first_event") {
    record.outcome = "garbage";
    response.end(firstErrorEvent);
    return;
  }

  const send = (text: string) => writeAndWait(response, text, closed);
  const write = (payload: unknown) => send(`data: ${JSON.stringify(payload)}\n\n`);
  const chunkOf = (choice: ChoiceProgress, text: string, finishReason: string | null, first = false) =>
    wireChunk({
      endpoint,
      identity,
      index: choice.index,
      text,
      first,
      finishReason,
      usageRequested,
    });
  const choices = startChoices(run.plan);
  let chunks = 0;
  // One step per token position: a server generates the choices of a request side by side.
  for (let step = 0; choices.some((choice) => choice.finishReason === undefined); step++) {
    for (const choice of choices) {
      const first = choice.text.length === 0;
      let token = nextToken(choice, run.maxTokens);
      if (token === undefined || !choice.sent) continue;
      // A backend that batches its output sends several tokens in one chunk.
      for (let more = 1; more < (behaviour.tokensPerChunk ?? 1); more++) {
        const next = nextToken(choice, run.maxTokens);
        if (next === undefined) break;
        token += next;
      }
      if (await interruptedAfter(chunks, run)) return;
      if (!(await sleepUntil(tokenDueAt(run.behaviour, run.startedAt, step), closed))) return;
      if (!(await write(chunkOf(choice, token, null, first)))) return;
      record.tokensSent = ++chunks;
      if (behaviour.garbage === "malformed_sse_lines" && !(await send(malformedSseLine(chunks)))) return;
    }
  }
  if (await interruptedAfter(chunks, run)) return;
  for (const choice of choices) {
    if (!choice.sent) continue;
    if (!(await write(chunkOf(choice, "", choice.finishReason ?? "stop")))) return;
  }
  if (usageRequested && behaviour.reportUsage) {
    const usageChunk = wireUsageChunk(endpoint, identity, usageOf(run, choices));
    if (behaviour.unclosedLastEvent === true) {
      record.outcome = "completed";
      response.end(`data: ${JSON.stringify(usageChunk)}\n`);
      return;
    }
    if (!(await write(usageChunk))) return;
  }
  record.outcome = "completed";
  response.end("data: [DONE]\n\n");
}

/** Generates every choice, waits as long as generating them would take, then sends them. */
export async function answerGeneration(run: GenerationRun): Promise<void> {
  const { request, behaviour, response, record, closed, identity } = run;
  const choices = startChoices(run.plan);
  let steps = 0;
  for (const choice of choices) {
    while (nextToken(choice, run.maxTokens) !== undefined) {}
    steps = Math.max(steps, choice.text.length);
  }
  const sent = choices.filter((choice) => choice.sent);
  const tokensSent = sent.reduce((sum, choice) => sum + choice.text.length, 0);
  if (behaviour.stallAfterChunks !== undefined) {
    await stallUntilClosed(closed);
    return;
  }
  const failAfter = behaviour.failAfterChunks;
  const failing = failAfter !== undefined && tokensSent >= failAfter;
  const generatedSteps = failing ? Math.min(failAfter, steps) : steps;
  if (!(await sleepUntil(tokenDueAt(run.behaviour, run.startedAt, Math.max(0, generatedSteps - 1)), closed)))
    return;
  if (failing) {
    dropConnection(response, record);
    return;
  }
  record.tokensSent = tokensSent;
  const answer = wireResponse({
    endpoint: request.endpoint,
    identity,
    choices: sent.map((choice) => ({
      index: choice.index,
      text: choice.text.join(""),
      finishReason: choice.finishReason ?? "stop",
    })),
    usage: behaviour.reportUsage ? usageOf(run, choices) : undefined,
  });
  const extras = behaviour.messageExtras;
  if (extras && Array.isArray(answer.choices))
    for (const choice of answer.choices as Array<{ message?: Record<string, unknown> }>)
      if (choice.message) Object.assign(choice.message, extras);
  sendJson(response, record, 200, answer, "completed");
}

function startChoices(plan: ChoicePlan): ChoiceProgress[] {
  return plan.choices.map((choice) => ({
    ...choice,
    tokens: choice.generation.tokens[Symbol.iterator](),
    text: [],
    finishReason: undefined,
  }));
}

/** The choice's next token, or undefined once it has stopped: at its last token or the output limit. */
function nextToken(choice: ChoiceProgress, maxTokens: number | undefined): string | undefined {
  if (choice.finishReason !== undefined) return undefined;
  const next = choice.tokens.next();
  if (next.done) {
    choice.finishReason = "stop";
    return undefined;
  }
  if (maxTokens !== undefined && choice.text.length >= maxTokens) {
    choice.finishReason = "length";
    return undefined;
  }
  choice.text.push(next.value);
  return next.value;
}

/** Usage over every generated choice, `best_of` candidates included, as the server reports it. */
function usageOf(run: GenerationRun, choices: readonly ChoiceProgress[]): WireUsage {
  const completionTokens = choices.reduce((sum, choice) => {
    const text = choice.text.join("");
    return sum + (choice.generation.countCompletionTokens?.(text) ?? choice.text.length);
  }, 0);
  return reportedUsage(run.behaviour, run.plan.promptTokens, completionTokens);
}

/** Ends the stream if an injected failure is due after `chunks` token chunks; true when it did. */
async function interruptedAfter(chunks: number, run: GenerationRun): Promise<boolean> {
  const { behaviour, response, record, closed } = run;
  if (behaviour.failAfterChunks !== undefined && chunks >= behaviour.failAfterChunks) {
    dropConnection(response, record);
    return true;
  }
  if (behaviour.stallAfterChunks !== undefined && chunks >= behaviour.stallAfterChunks) {
    await stallUntilClosed(closed);
    return true;
  }
  if (behaviour.holdAfterChunks?.chunks === chunks) {
    await Promise.race([behaviour.holdAfterChunks.release, stallUntilClosed(closed)]);
    if (closed.aborted) return true;
  }
  if (behaviour.garbage === "error_after_chunks" && chunks >= (behaviour.errorAfterChunks ?? 3)) {
    record.outcome = "garbage";
    response.end(errorEvent("the backend failed mid-stream (injected)"));
    return true;
  }
  return false;
}
