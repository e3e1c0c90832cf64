import type { SeededRandom } from "../../protocol/testing/seededRandom.js";
import type { PromptKind } from "../promptParts.js";
import { randomText } from "./randomText.js";

/** A random request body, with the extra top-level fields a caller would name for it. */
export type RandomPromptBody = { kind: PromptKind; body: Record<string, unknown>; extraFields: string[] };

const RUNS = ["a", "文", "😀", "ب", "한", "Z", "9", "!", "\u0301"];

/** Text that stresses tokenizers: mixed scripts, or long unspaced runs of one character. */
export function randomPromptText(random: SeededRandom): string {
  const roll = random.next();
  if (roll < 0.2) return random.pick(RUNS).repeat(random.int(50, 300));
  if (roll < 0.3) return `${randomText(random, 20)}${random.pick(RUNS).repeat(random.int(100, 250))} end`;
  if (roll < 0.4) return "The quick brown fox jumps over the lazy dog. ".repeat(random.int(1, 20));
  return randomText(random, 120);
}

/** A chat, completion or embedding body with content parts, tools, names and ids in random places. */
export function randomPromptBody(random: SeededRandom): RandomPromptBody {
  const kind = random.pick(["chat", "completion", "embedding"] as const);
  const extraFields = random.next() < 0.3 ? ["documents"] : [];
  const body: Record<string, unknown> = { model: "ignored", n: random.int(1, 4) };
  if (extraFields.length > 0)
    body.documents = [{ title: randomPromptText(random), text: randomPromptText(random) }];
  if (kind === "chat") {
    body.messages = Array.from({ length: random.int(1, 4) }, () => randomMessage(random));
    if (random.next() < 0.4) body.tools = [randomTool(random)];
    if (random.next() < 0.2)
      body.response_format = { type: "json_schema", json_schema: { name: randomPromptText(random) } };
    if (random.next() < 0.2)
      body.tool_choice = { type: "function", function: { name: randomPromptText(random) } };
    return { kind, body, extraFields };
  }
  const field = kind === "completion" ? "prompt" : "input";
  const roll = random.next();
  body[field] =
    roll < 0.3
      ? randomPromptText(random)
      : roll < 0.5
        ? Array.from({ length: random.int(1, 50) }, () => random.int(0, 100_000))
        : Array.from({ length: random.int(1, 4) }, () =>
            random.next() < 0.7 ? randomPromptText(random) : [random.int(0, 9), random.int(0, 9)],
          );
  if (kind === "completion" && random.next() < 0.3) body.suffix = randomPromptText(random);
  return { kind, body, extraFields };
}

function randomMessage(random: SeededRandom): Record<string, unknown> {
  const message: Record<string, unknown> = { role: random.pick(["system", "user", "assistant", "tool"]) };
  // A whole message may claim a part's type; it must still be read as text.
  if (random.next() < 0.15) message.type = random.pick(["input_audio", "image_url", "file", "input_image"]);
  if (random.next() < 0.3) message.name = randomPromptText(random);
  message.content =
    random.next() < 0.4
      ? randomPromptText(random)
      : Array.from({ length: random.int(1, 4) }, () => randomPart(random));
  if (random.next() < 0.2) {
    message.tool_calls = [
      {
        id: `call_${random.int(0, 999)}`,
        type: "function",
        function: { name: randomPromptText(random), arguments: randomPromptText(random) },
        // A part-shaped object outside `content` is plain text.
        extra: random.next() < 0.5 ? randomPart(random) : null,
      },
    ];
  }
  return message;
}

function randomPart(random: SeededRandom): unknown {
  const data = () => `data:image/png;base64,${"iVBORw0KGgo".repeat(random.int(1, 200))}`;
  switch (random.int(0, 5)) {
    case 0:
      return {
        type: "image_url",
        image_url: { url: data(), detail: "high" },
        note: randomPromptText(random),
      };
    case 1:
      return {
        type: "input_audio",
        input_audio: { data: "UklGR".repeat(random.int(1, 100)), format: "wav" },
      };
    case 2:
      return {
        type: "file",
        file: { filename: randomPromptText(random), file_data: "JVBERi0".repeat(random.int(1, 100)) },
      };
    case 3:
      return [randomPromptText(random), random.int(0, 1000), true];
    case 4:
      return { type: "input_image", image_url: data(), caption: randomPromptText(random) };
    default:
      return { type: "text", text: randomPromptText(random) };
  }
}

function randomTool(random: SeededRandom): unknown {
  return {
    type: "function",
    function: {
      name: randomPromptText(random),
      description: randomPromptText(random),
      parameters: { type: "object", properties: { [randomPromptText(random)]: { type: "string" } } },
    },
  };
}
