import type { ParseArgsConfig } from "node:util";
import type { CommandName } from "./commandUsage.js";

type FlagOptions = NonNullable<ParseArgsConfig["options"]>;

const buyerFlags = {
  policy: { type: "string" },
  "private-key": { type: "string" },
  rpc: { type: "string" },
  json: { type: "boolean" },
} as const satisfies FlagOptions;

/** The flags each command accepts: what it parses, what `--help` and the README list, and what a typo is matched against. */
export const commandFlags = {
  dev: {
    port: { type: "string" },
    host: { type: "string" },
    json: { type: "boolean" },
    "fresh-buyer": { type: "boolean" },
    upstream: { type: "string" },
    "upstream-key-env": { type: "string" },
    model: { type: "string" },
    "data-dir": { type: "string" },
    "tokens-per-second": { type: "string" },
  },
  gateway: { config: { type: "string" }, port: { type: "string" } },
  ledger: { "data-dir": { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } },
  reconcile: {
    config: { type: "string" },
    "from-block": { type: "string" },
    "to-block": { type: "string" },
    rpc: { type: "string" },
    "data-dir": { type: "string" },
    json: { type: "boolean" },
  },
  devnet: {
    port: { type: "string" },
    host: { type: "string" },
    buyers: { type: "string" },
    "fresh-buyers": { type: "string" },
    json: { type: "boolean" },
  },
  facilitator: {
    rpc: { type: "string" },
    "private-key": { type: "string" },
    network: { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
    "no-rpc-batch": { type: "boolean" },
    "no-gas-sponsoring": { type: "boolean" },
    "sponsor-limit": { type: "string" },
    "sponsor-daily-limit": { type: "string" },
    "erc20-approval": { type: "boolean" },
    asset: { type: "string" },
  },
  pay: {
    ...buyerFlags,
    url: { type: "string" },
    method: { type: "string" },
    body: { type: "string" },
    header: { type: "string", multiple: true },
  },
  chat: {
    ...buyerFlags,
    gateway: { type: "string", multiple: true },
    model: { type: "string", multiple: true },
    "max-tokens": { type: "string" },
    api: { type: "string" },
  },
  receipts: { signer: { type: "string" }, gateway: { type: "string" }, json: { type: "boolean" } },
  spend: {
    json: { type: "boolean" },
    policy: { type: "string" },
    serve: { type: "boolean" },
    host: { type: "string" },
    port: { type: "string" },
  },
  channels: {
    "data-dir": { type: "string" },
    buyer: { type: "boolean" },
    json: { type: "boolean" },
    gateway: { type: "string" },
    rpc: { type: "string" },
  },
  refund: {
    gateway: { type: "string" },
    url: { type: "string" },
    rpc: { type: "string" },
    "private-key": { type: "string" },
    json: { type: "boolean" },
  },
  mcp: {
    gateway: { type: "string", multiple: true },
    "mcp-server": { type: "string", multiple: true },
    policy: { type: "string" },
    "private-key": { type: "string" },
    rpc: { type: "string" },
    http: { type: "boolean" },
    host: { type: "string" },
    port: { type: "string" },
  },
} as const satisfies Record<CommandName, FlagOptions>;
