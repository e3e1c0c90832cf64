const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** A `cache_control` marker and where it is (`system[0]`, `messages[2].content[1]`, `tools[3]`; `""` for the request's own). */
export type PromptCacheControl = { path: string; control: Record<string, unknown> };

/**
 * The `cache_control` markers of an Anthropic Messages request, read where the API reads them: on
 * the request itself (automatic caching, the breakpoint placed by the API), on `system` blocks, on `tools`, on the messages' content blocks, and on the blocks a `tool_result`
 * (or another block) holds in its `content`, or a document in its `source.content`. Never inside a tool call's `input` or a tool's
 * `input_schema`, which are data. The request asks for its prompt to be cached, and may be charged
 * for writing it, only when it has one. See
 * https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching.
 * @example
 * promptCacheControls({ system: [{ type: "text", text, cache_control: { type: "ephemeral" } }] })
 * // [{ path: "system[0]", control: { type: "ephemeral" } }]
 */
export function promptCacheControls(body: Record<string, unknown>): PromptCacheControl[] {
  const found: PromptCacheControl[] = [];
  if (isObject(body.cache_control)) found.push({ path: "", control: body.cache_control });
  const block = (value: unknown, path: string, depth: number): void => {
    if (!isObject(value)) return;
    if (isObject(value.cache_control)) found.push({ path, control: value.cache_control });
    // A tool result's (or search result's) blocks; deeper nesting is not something the API reads.
    if (depth < 4 && Array.isArray(value.content))
      for (const [i, inner] of value.content.entries()) block(inner, `${path}.content[${i}]`, depth + 1);
    // A document of content blocks holds its blocks in its source.
    const source = value.source;
    if (depth < 4 && isObject(source) && Array.isArray(source.content))
      for (const [i, inner] of source.content.entries())
        block(inner, `${path}.source.content[${i}]`, depth + 1);
  };
  if (Array.isArray(body.system))
    for (const [i, item] of body.system.entries()) block(item, `system[${i}]`, 0);
  if (Array.isArray(body.tools))
    for (const [i, tool] of body.tools.entries())
      if (isObject(tool) && isObject(tool.cache_control))
        found.push({ path: `tools[${i}]`, control: tool.cache_control });
  if (Array.isArray(body.messages))
    for (const [i, message] of body.messages.entries())
      if (isObject(message) && Array.isArray(message.content))
        for (const [j, item] of message.content.entries()) block(item, `messages[${i}].content[${j}]`, 0);
  return found;
}
