import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { HTTP_STATUS_OF } from "./httpStatusOf.js";

const root = join(import.meta.dirname, "..", "..");

/** Non-test TypeScript files under src/, except the code list itself. */
function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !path.includes("testkit")) out.push(path);
  }
  return out;
}

/** `code` → HTTP column of docs/errors.md's table. */
function documentedCodes(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(join(root, "docs", "errors.md"), "utf8").split("\n")) {
    const match = /^\| `(TOLLGATE_[A-Z_]+)` \| ([^|]+) \|/.exec(line);
    if (match) rows.set(match[1]!, match[2]!.trim());
  }
  return rows;
}

test("docs/errors.md lists exactly the codes the code raises, with the table's statuses", () => {
  const raised = new Set<string>();
  for (const file of sources(join(root, "src"))) {
    if (file.endsWith("TollgateError.ts") || file.endsWith("httpStatusOf.ts")) continue;
    for (const match of readFileSync(file, "utf8").matchAll(/"(TOLLGATE_[A-Z_]+)"/g)) raised.add(match[1]!);
  }
  const documented = documentedCodes();
  assert.deepEqual([...documented.keys()].sort(), [...raised].sort(), "documented = raised");
  assert.deepEqual(Object.keys(HTTP_STATUS_OF).sort(), [...raised].sort(), "the status table = raised");
  for (const [code, status] of Object.entries(HTTP_STATUS_OF)) {
    const column = documented.get(code)!;
    if (status === undefined) assert.equal(column, "—", code);
    else assert.ok(column.startsWith(String(status)), `${code}: table ${status}, docs ${column}`);
  }
});
