import { encodePaymentSignatureHeader } from "../../../src/protocol/index.js";

/** One hostile request: what is sent and which generator made it. */
export type FuzzCase = {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
};

export type CreateFuzzerParameters = {
  random: () => number;
  /** Real signed payment payloads (fresh nonces) to mutate and to send as is. */
  payloads: readonly unknown[];
  /** A well-formed request body for the route. */
  body: Record<string, unknown>;
};

const inferencePaths = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];
const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** Printable ASCII and tab: what an HTTP header value may carry. */
const headerChars = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("");
const pathChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/";

/** Big strings are made once: the fuzz is about the gateway's time, not the generator's. */
const oversizedHeaders = [9_000, 70_000, 300_000, 1_500_000].map((length) => "A".repeat(length));
const oversizedBody = `{"model":"${"m".repeat(5 * 1024 * 1024)}"}`;

function deepArray(depth: number): string {
  return `${"[".repeat(depth)}${"]".repeat(depth)}`;
}

function deepObject(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

/**
 * A seeded generator of hostile requests against the gateway: PAYMENT-SIGNATURE headers (random bytes, bad
 * base64, random and deep JSON, wrong types, huge numbers, mutated real payloads, oversized), bodies (not
 * JSON, deep JSON, wrong types, huge numbers, oversized) and paths (%2F, trailing and doubled slashes, case,
 * dot segments, long, methods).
 */
export function createFuzzer({ random, payloads, body }: CreateFuzzerParameters): () => FuzzCase {
  const int = (below: number) => Math.floor(random() * below);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)] as T;
  const chars = (alphabet: string, length: number) => {
    let out = "";
    for (let i = 0; i < length; i++) out += alphabet[int(alphabet.length)];
    return out;
  };
  const size = () => pick([0, 1, 3, 16, 64, 300, 2_000, 20_000]);

  const hostileValues = (): unknown[] => [
    null,
    true,
    0,
    -1,
    1.5,
    1e308,
    -1e308,
    2 ** 53 + 1,
    "",
    " ",
    "-1",
    "1e400",
    "9".repeat(100),
    `0x${"f".repeat(80)}`,
    "0x",
    "NaN",
    "__proto__",
    {},
    [],
    [[[]]],
    { __proto__: { polluted: true } },
    "\u0000\u0001",
    "😀".repeat(40),
    "a".repeat(5_000),
    JSON.parse(deepObject(60)),
  ];

  const randomJson = (depth: number): unknown => {
    const roll = int(depth <= 0 ? 5 : 8);
    if (roll === 0) return null;
    if (roll === 1) return random() < 0.5;
    if (roll === 2) return (random() - 0.5) * 10 ** int(20);
    if (roll === 3) return chars(headerChars, int(20));
    if (roll === 4) return pick(hostileValues());
    if (roll === 5 || roll === 6) {
      const object: Record<string, unknown> = {};
      for (let i = int(5); i > 0; i--)
        object[chars("abcdefxyz402Version", 1 + int(10))] = randomJson(depth - 1);
      return object;
    }
    return Array.from({ length: int(4) }, () => randomJson(depth - 1));
  };

  /** Every path inside a JSON value, e.g. ["payload", "permit2Authorization", "nonce"]. */
  const pathsOf = (value: unknown, prefix: string[] = [], out: string[][] = []): string[][] => {
    out.push(prefix);
    if (value && typeof value === "object") {
      for (const [key, child] of Object.entries(value)) pathsOf(child, [...prefix, key], out);
    }
    return out;
  };

  /** A copy of `value` with one place replaced, deleted or added to. */
  const mutate = (value: unknown): unknown => {
    const copy = structuredClone(value) as Record<string, unknown>;
    const path = pick(pathsOf(copy).filter((candidate) => candidate.length > 0));
    if (!path) return pick(hostileValues());
    let parent: Record<string, unknown> = copy;
    for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
    const last = path.at(-1) as string;
    const roll = int(4);
    if (roll === 0) delete parent[last];
    else if (roll === 1) parent[`${last}_extra`] = randomJson(2);
    else if (roll === 2 && typeof parent[last] === "string")
      parent[last] = `${(parent[last] as string).slice(0, -1)}${pick(["0", "f", "Z", "ÿ", ""])}`;
    else parent[last] = pick(hostileValues());
    return copy;
  };

  const base64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

  const paymentHeaders: Array<() => { kind: string; value: string }> = [
    () => ({ kind: "header:random-chars", value: chars(headerChars, size()) }),
    () => ({ kind: "header:random-base64", value: chars(base64Alphabet, size()) }),
    () => ({
      kind: "header:base64-of-random-bytes",
      value: Buffer.from(chars(headerChars, size())).toString("base64"),
    }),
    () => ({
      kind: "header:bad-base64",
      value: `${chars(base64Alphabet, 40)}${pick(["%", " ", "==x", "-_", "\t", "\\"])}${chars(base64Alphabet, 8)}`,
    }),
    () => ({ kind: "header:random-json", value: base64(JSON.stringify(randomJson(4)) ?? "null") }),
    () => ({
      kind: "header:deep-json",
      value: base64(pick([deepArray, deepObject])(pick([100, 1_000, 5_000, 50_000]))),
    }),
    () => ({ kind: "header:oversized", value: pick(oversizedHeaders) }),
    () => ({
      kind: "header:wrong-version",
      value: base64(
        JSON.stringify({ ...(pick(payloads) as object), x402Version: pick([1, "2", 3, null, 2.5]) }),
      ),
    }),
    () => ({ kind: "header:mutated-payload", value: base64(JSON.stringify(mutate(pick(payloads)))) }),
    () => ({
      kind: "header:mutated-payload-twice",
      value: base64(JSON.stringify(mutate(mutate(pick(payloads))))),
    }),
    () => ({ kind: "header:valid", value: encodePaymentSignatureHeader(pick(payloads) as never) }),
  ];

  const bodies: Array<() => { kind: string; value: string }> = [
    () => ({ kind: "body:not-json", value: chars(headerChars, size()) }),
    () => ({
      kind: "body:truncated-json",
      value: JSON.stringify(body).slice(0, int(JSON.stringify(body).length)),
    }),
    () => ({ kind: "body:json-scalar", value: pick(["null", "[]", "1e999", '"text"', "true", "{}", "-0"]) }),
    () => ({
      kind: "body:deep-json",
      value: pick([deepArray, deepObject])(pick([100, 1_000, 10_000, 100_000])),
    }),
    () => ({ kind: "body:random-json", value: JSON.stringify(randomJson(5)) ?? "null" }),
    () => ({ kind: "body:mutated", value: JSON.stringify(mutate(body)) }),
    () => ({
      kind: "body:huge-numbers",
      value: JSON.stringify({
        ...body,
        [pick(["max_tokens", "n", "max_completion_tokens", "temperature"])]: pick([
          1e308,
          -1,
          2 ** 64,
          1.5,
          "12",
          null,
          1e-300,
        ]),
      }).replace("1e+308", pick(["1e+308", "1e400", "99999999999999999999999999999"])),
    }),
    () => ({
      kind: "body:wrong-types",
      value: JSON.stringify({
        ...body,
        [pick(["model", "messages", "stream", "prompt", "input", "stream_options", "tools"])]: pick(
          hostileValues(),
        ),
      }),
    }),
    () => ({
      kind: "body:long-prompt",
      value: JSON.stringify({
        ...body,
        messages: [{ role: "user", content: chars(headerChars, pick([10_000, 200_000])) }],
      }),
    }),
    () => ({ kind: "body:oversized", value: oversizedBody }),
  ];

  const pathVariant = (path: string): { kind: string; value: string } => {
    const roll = int(12);
    if (roll === 0)
      return {
        kind: "path:%2F",
        value: path.replace(/\//g, () => (random() < 0.3 ? pick(["%2F", "%2f"]) : "/")),
      };
    if (roll === 1)
      return { kind: "path:trailing-slash", value: `${path}${pick(["/", "//", "/.", "/%20"])}` };
    if (roll === 2)
      return { kind: "path:doubled-slash", value: path.replace(/\//g, () => (random() < 0.4 ? "//" : "/")) };
    if (roll === 3)
      return {
        kind: "path:case",
        value: path.replace(/[a-z]/g, (letter) => (random() < 0.3 ? letter.toUpperCase() : letter)),
      };
    if (roll === 4)
      return {
        kind: "path:dot-segments",
        value: path.replace("/v1/", pick(["/v1/./", "/x/../v1/", "/v1/%2e/", "/v1/%2e%2e/v1/"])),
      };
    if (roll === 5)
      return { kind: "path:query", value: `${path}?${chars(pathChars.replace("/", ""), int(40))}` };
    if (roll === 6)
      return {
        kind: "path:encoded-bytes",
        value: `${path}${pick(["%00", "%ff", "%c0%af", "%E2%80%AE", "%25"])}`,
      };
    if (roll === 7)
      return { kind: "path:long", value: `/v1/${chars(pathChars, pick([1_000, 8_000, 30_000]))}` };
    if (roll === 8) return { kind: "path:random", value: `/${chars(pathChars, int(60))}` };
    if (roll === 9)
      return { kind: "path:prefix", value: `${pick(["//", "/v1/v1", "/api", "/V1"])}${path.slice(3)}` };
    return { kind: "path:exact", value: path };
  };

  return function nextCase(): FuzzCase {
    const family = int(3);
    const path = pick(inferencePaths);
    const headers: Record<string, string> = {
      "content-type": pick([
        "application/json",
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
      ]),
    };
    if (!headers["content-type"]) delete headers["content-type"];
    if (family === 0) {
      const header = pick(paymentHeaders)();
      headers[pick(["payment-signature", "payment-signature", "x-payment", "PAYMENT-SIGNATURE"])] =
        header.value;
      return { kind: header.kind, method: "POST", path, headers, body: JSON.stringify(body) };
    }
    if (family === 1) {
      const made = pick(bodies)();
      if (random() < 0.5) headers["payment-signature"] = pick(paymentHeaders)().value;
      return { kind: made.kind, method: "POST", path, headers, body: made.value };
    }
    const variant = pathVariant(path);
    const method = pick(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
    if (random() < 0.5) headers["payment-signature"] = pick(paymentHeaders)().value;
    return {
      kind: variant.kind,
      method,
      path: variant.value,
      headers,
      ...(method === "GET" || method === "HEAD" ? {} : { body: JSON.stringify(body) }),
    };
  };
}
