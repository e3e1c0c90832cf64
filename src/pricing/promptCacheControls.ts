const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The `cache_control` markers of an Anthropic Messages request, wherever it puts them (`system`
 * blocks, the messages' content blocks, `tools`): the request asks for its prompt to be cached, and
 * may be charged for writing it, only when it has one. See
 * https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching.
 * @example
 * promptCacheControls({ system: [{ type: "text", text, cache_control: { type: "ephemeral" } }] }) // [{ type: "ephemeral" }]
 */
export function promptCacheControls(body: Record<string, unknown>): Array<Record<string, unknown>> {
  const found: Array<Record<string, unknown>> = [];
  const visit = (value: unknown, depth: number): void => {
    // Content nests a few levels (a tool result's blocks); deeper is not where the API reads markers.
    if (depth > 8 || typeof value !== "object" || value === null) return;
    if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
      return;
    }
    const record = value as Record<string, unknown>;
    if (isObject(record.cache_control)) found.push(record.cache_control);
    for (const [key, item] of Object.entries(record)) if (key !== "cache_control") visit(item, depth + 1);
  };
  for (const field of ["system", "messages", "tools"]) visit(body[field], 0);
  return found;
}
