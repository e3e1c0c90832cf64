import type { z } from "zod";

/** The first problem of a zod error as a dotted field path and a one-line message naming it. */
export function describeIssue(error: z.ZodError, prefix?: string): { field: string; message: string } {
  const issue = error.issues[0];
  const path = [prefix, ...(issue?.path ?? []).map(formatSegment)].filter((part) => part !== undefined);
  const field = path.join(".").replaceAll(".[", "[") || "(root)";
  return { field, message: `${field}: ${issue?.message ?? "invalid"}` };
}

function formatSegment(segment: PropertyKey): string {
  return typeof segment === "number" ? `[${segment}]` : String(segment);
}
