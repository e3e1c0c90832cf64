import { z } from "zod";
import { explainHttpFailure } from "../buyer/explainHttpFailure.js";
import { apiBaseUrl, chooseProvider, formatReceiptLine } from "../buyer/index.js";
import { TollgateError } from "../errors/index.js";
import { exitCodes, parseFlags, printableLines, printError, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import {
  exitCodeOfStatus,
  jsonLine,
  openBuyerSession,
  paymentWithSignedReceipts,
  reportBuyerError,
} from "./payCommand.js";

const flagsSchema = z.object({
  gateway: z.array(z.url()).min(1, "at least one --gateway URL"),
  model: z.array(z.string().min(1)).min(1, "at least one --model"),
  "max-tokens": z.coerce.number().int().positive().optional(),
  api: z
    .enum(["chat", "messages", "responses"], {
      error:
        "--api must be chat (/v1/chat/completions), messages (/v1/messages) or responses (/v1/responses)",
    })
    .default("chat"),
  policy: z.string().optional(),
  "private-key": z.string().optional(),
  rpc: z.url().optional(),
  json: z.boolean().default(false),
});

type ChatApi = "chat" | "messages" | "responses";

/** Anthropic's Messages API requires `max_tokens`: without the flag, the model's listed limit, else this. */
const DEFAULT_MESSAGES_MAX_TOKENS = 1024;

/** The request body of one prompt in each API, streamed. */
function chatBody(api: ChatApi, prompt: string, maxTokens: number | undefined): Record<string, unknown> {
  if (api === "responses")
    return {
      input: prompt,
      stream: true,
      ...(maxTokens === undefined ? {} : { max_output_tokens: maxTokens }),
    };
  return {
    messages: [{ role: "user", content: prompt }],
    stream: true,
    ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
  };
}

/** Each API's route under the API base. */
const API_PATHS: Readonly<Record<ChatApi, string>> = {
  chat: "/chat/completions",
  messages: "/messages",
  responses: "/responses",
};

/**
 * `tollgate chat`: one streamed, paid answer through the chat completions, messages or responses
 * API, routed to the cheapest (or fastest within a margin) provider (chat) or sent to the one given.
 */
export async function chatCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags("chat", argv, commandFlags.chat, flagsSchema, {
    positionals: true,
  });
  const prompt = positionals.join(" ").trim();
  if (!prompt) {
    throw new TollgateError({ code: "TOLLGATE_CONFIG_INVALID", shortMessage: "chat: the prompt is missing" });
  }
  const models = flags.model.flatMap((model) => model.split(",")).filter(Boolean);
  const { api } = flags;
  if (api !== "chat" && (flags.gateway.length > 1 || models.length > 1)) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `chat: --api ${api} takes one --gateway and one --model (the router compares chat completions only)`,
    });
  }
  let body = chatBody(
    api,
    prompt,
    flags["max-tokens"] ?? (api === "messages" ? DEFAULT_MESSAGES_MAX_TOKENS : undefined),
  );
  const session = await openBuyerSession(flags);
  const { payingFetch } = session;
  try {
    let baseUrl = apiBaseUrl(flags.gateway[0]!);
    let model = models[0]!;
    if (flags.gateway.length > 1 || models.length > 1) {
      const latencies = await (await payingFetch.spendStore()).providerLatencies();
      const route = await chooseProvider({
        gateways: flags.gateway,
        models,
        body,
        policy: session.policy,
        latencies,
      });
      if (!route.chosen) {
        printError(`tollgate chat: ${route.reason}`);
        return exitCodes.policyRefused;
      }
      printError(`provider: ${route.reason}`);
      baseUrl = route.chosen.model.baseUrl;
      model = route.chosen.model.id;
      payingFetch.learnPrices(route.candidates.map((candidate) => candidate.model));
    } else {
      // Knowing the prices lets the first request carry its payment; a seller without a
      // model list is still paid through its 402.
      const listed = await payingFetch.discover(baseUrl).catch(() => undefined);
      if (api === "messages" && flags["max-tokens"] === undefined) {
        // The model's own limit, as the other APIs default to.
        const limit = listed?.find((entry) => entry.id === model)?.price?.maxOutputTokens;
        if (limit !== undefined) body = chatBody(api, prompt, limit);
      }
    }
    const response = await payingFetch(`${baseUrl}${API_PATHS[api]}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ ...body, model }),
    });
    if (!response.ok) {
      const text = await response.text();
      const failure = await explainHttpFailure({
        status: response.status,
        headers: response.headers,
        body: text,
        payer: payingFetch.address,
        rpcUrl: flags.rpc,
      });
      if (flags.json)
        printLine(
          jsonLine({
            provider: baseUrl,
            model,
            status: response.status,
            payment: null,
            error: { reason: failure.reason ?? null, message: failure.message },
          }),
        );
      printError(`tollgate chat: ${failure.statusLine}: ${failure.message}`);
      return exitCodeOfStatus(response.status);
    }
    const answer = await printStream(response, api, flags.json);
    await payingFetch.idle();
    const receipt = session.lastReceipt();
    if (flags.json)
      printLine(
        jsonLine({
          provider: baseUrl,
          model,
          answer,
          payment: await paymentWithSignedReceipts(payingFetch, receipt),
        }),
      );
    else {
      process.stdout.write("\n");
      if (receipt) printError(formatReceiptLine(receipt));
      else printError("no receipt arrived; the maximum stays reserved until the authorization expires");
    }
    return exitCodes.ok;
  } catch (error) {
    return reportBuyerError("chat", error, flags.json);
  } finally {
    await payingFetch.close();
  }
}

/** The text one stream event adds: a chat chunk's delta, a `text_delta`, a `response.output_text.delta`. */
function textOf(api: ChatApi, event: unknown): unknown {
  if (api === "messages") {
    const { type, delta } = event as { type?: unknown; delta?: { type?: unknown; text?: unknown } };
    return type === "content_block_delta" && delta?.type === "text_delta" ? delta.text : undefined;
  }
  if (api === "responses") {
    const { type, delta } = event as { type?: unknown; delta?: unknown };
    return type === "response.output_text.delta" ? delta : undefined;
  }
  return (event as { choices?: Array<{ delta?: { content?: unknown } }> }).choices?.[0]?.delta?.content;
}

/** Writes each piece of text of the API's stream as it arrives (unless `quiet`); resolves to the whole answer. */
async function printStream(response: Response, api: ChatApi, quiet: boolean): Promise<string> {
  if (!response.body) return "";
  const decoder = new TextDecoder();
  let pending = "";
  let answer = "";
  for await (const chunk of response.body) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split(/\r?\n/);
    pending = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") continue;
      let content: unknown;
      try {
        content = textOf(api, JSON.parse(data));
      } catch {
        continue;
      }
      if (typeof content !== "string") continue;
      answer += content;
      // The answer is the seller's words: its control characters are written out, not obeyed.
      if (!quiet) process.stdout.write(printableLines(content));
    }
  }
  return answer;
}
