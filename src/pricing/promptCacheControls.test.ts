import assert from "node:assert/strict";
import { test } from "node:test";
import { promptCacheControls } from "./promptCacheControls.js";

const ephemeral = { type: "ephemeral" };

test("finds cache_control where the Messages API reads it, with its place, and not in data", () => {
  const body = {
    system: [{ type: "text", text: "rules", cache_control: ephemeral }],
    tools: [
      {
        name: "cdn",
        // A tool's schema may name a property cache_control: it is data, not a marker.
        input_schema: { type: "object", properties: { cache_control: { type: "object" } } },
      },
      { name: "look", input_schema: { type: "object" }, cache_control: ephemeral },
    ],
    messages: [
      { role: "user", content: "cache_control in plain text is nothing" },
      {
        role: "assistant",
        // The model's own tool arguments are data too.
        content: [{ type: "tool_use", id: "t", name: "cdn", input: { cache_control: { ttl: "1h" } } }],
      },
      {
        role: "user",
        content: [
          {
            type: "tool_result",
            tool_use_id: "t",
            content: [{ type: "text", text: "ok", cache_control: { type: "ephemeral", ttl: "5m" } }],
          },
          {
            type: "image",
            source: { type: "base64", media_type: "image/png", data: "x" },
            cache_control: ephemeral,
          },
        ],
      },
    ],
  };
  assert.deepEqual(
    promptCacheControls(body).map((found) => found.path),
    ["system[0]", "tools[1]", "messages[2].content[0].content[0]", "messages[2].content[1]"],
  );
  assert.deepEqual(promptCacheControls({ system: "rules", messages: [{ role: "user", content: "hi" }] }), []);
  assert.deepEqual(
    promptCacheControls({
      messages: [{ role: "user", content: [{ type: "text", text: "hi", cache_control: null }] }],
    }),
    [],
  );
});

test("a cache_control on the request itself (automatic caching) is a marker, named by an empty place", () => {
  const found = promptCacheControls({
    cache_control: { type: "ephemeral", ttl: "5m" },
    messages: [{ role: "user", content: "hi" }],
  });
  assert.deepEqual(found, [{ path: "", control: { type: "ephemeral", ttl: "5m" } }]);
});

test("a cache_control inside a document of content blocks is a marker too, so a one-hour ttl there is seen", () => {
  const found = promptCacheControls({
    messages: [
      {
        role: "user",
        content: [
          {
            type: "document",
            source: {
              type: "content",
              content: [{ type: "text", text: "a page", cache_control: { type: "ephemeral", ttl: "1h" } }],
            },
          },
        ],
      },
    ],
  });
  assert.deepEqual(found, [
    { path: "messages[0].content[0].source.content[0]", control: { type: "ephemeral", ttl: "1h" } },
  ]);
});
