import type { z } from "zod";
import { closestName } from "./closestName.js";

type Def = {
  type?: string;
  shape?: Record<string, z.core.$ZodType>;
  element?: z.core.$ZodType;
  valueType?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  options?: readonly z.core.$ZodType[];
  getter?: () => z.core.$ZodType;
};

const defOf = (schema: z.core.$ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** The object schemas `schema` may be at `path` (several where a union is on the way). */
function objectsAt(schema: z.core.$ZodType, path: readonly PropertyKey[], depth = 0): Def[] {
  if (depth > 32) return [];
  const def = defOf(schema);
  if (def.innerType) return objectsAt(def.innerType, path, depth + 1);
  if (def.type === "pipe" && def.in) return objectsAt(def.in, path, depth + 1);
  if (def.type === "lazy" && def.getter) return objectsAt(def.getter(), path, depth + 1);
  if (def.type === "union" && def.options)
    return def.options.flatMap((option) => objectsAt(option, path, depth + 1));
  if (path.length === 0) return def.type === "object" ? [def] : [];
  const [step, ...rest] = path;
  if (def.type === "object" && def.shape && typeof step === "string" && def.shape[step])
    return objectsAt(def.shape[step], rest, depth + 1);
  if (def.type === "array" && def.element) return objectsAt(def.element, rest, depth + 1);
  if (def.type === "record" && def.valueType) return objectsAt(def.valueType, rest, depth + 1);
  return [];
}

/**
 * An unknown key's problem said with what to write instead: the known key it is nearest to (a typo), or
 * the keys that are allowed there. Any other problem's message as it is.
 */
export function explainIssue(schema: z.core.$ZodType, issue: z.core.$ZodIssue): string {
  if (issue.code !== "unrecognized_keys") return issue.message;
  const known = [...new Set(objectsAt(schema, issue.path).flatMap((def) => Object.keys(def.shape ?? {})))];
  if (known.length === 0) return issue.message;
  return issue.keys
    .map((key) => {
      const closest = closestName(key, known);
      return closest
        ? `unknown key "${key}"; did you mean "${closest}"?`
        : `unknown key "${key}"; the keys here are ${known.join(", ")}`;
    })
    .join("; ");
}
