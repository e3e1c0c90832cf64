import { readFileSync } from "node:fs";
import { isTollgateError } from "../errors/index.js";
import { exitCodes, printError, printLine } from "./cliSupport.js";
import { type CommandName, commandUsage } from "./commandUsage.js";

type RunCommand = (argv: string[]) => Promise<number>;

// Each command is imported only when it runs, so `--help` and `--version` start at once.
const commands: Record<CommandName, () => Promise<RunCommand>> = {
  dev: async () => (await import("./devCommand.js")).devCommand,
  gateway: async () => (await import("./gatewayCommand.js")).gatewayCommand,
  ledger: async () => (await import("./ledgerCommand.js")).ledgerCommand,
  channels: async () => (await import("./channelsCommand.js")).channelsCommand,
  reconcile: async () => (await import("./reconcileCommand.js")).reconcileCommand,
  devnet: async () => (await import("./devnetCommand.js")).devnetCommand,
  facilitator: async () => (await import("./facilitatorCommand.js")).facilitatorCommand,
  pay: async () => (await import("./payCommand.js")).payCommand,
  chat: async () => (await import("./chatCommand.js")).chatCommand,
  spend: async () => (await import("./spendCommand.js")).spendCommand,
  receipts: async () => (await import("./receiptsCommand.js")).receiptsCommand,
  refund: async () => (await import("./refundCommand.js")).refundCommand,
  mcp: async () => (await import("./mcpCommand.js")).mcpCommand,
};

function usage(): string {
  return [
    "tollgate — pay-per-token billing for AI inference over x402",
    "tollgate --version\n  Prints the version of this package.",
    ...Object.values(commandUsage),
  ].join("\n\n");
}

/** The `tollgate` command line; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    printLine(usage());
    return name ? exitCodes.ok : exitCodes.usage;
  }
  if (name === "--version") {
    printLine(packageVersion());
    return exitCodes.ok;
  }
  if (!isCommandName(name)) {
    printError(`tollgate: unknown command '${name}'\n\n${usage()}`);
    return exitCodes.usage;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    printLine(commandUsage[name]);
    return exitCodes.ok;
  }
  try {
    const run = await commands[name]();
    return await run(rest);
  } catch (error) {
    if (isTollgateError(error, "TOLLGATE_CONFIG_INVALID")) {
      printError(`tollgate: ${error.shortMessage}\n\n${commandUsage[name]}`);
      return exitCodes.usage;
    }
    const unlistenable = explainListenError(error);
    printError(
      `tollgate ${name}: ${unlistenable ?? (isTollgateError(error) ? error.shortMessage : (error as Error).message)}`,
    );
    return exitCodes.failure;
  }
}

/** A server that could not listen (a port taken, an address not this machine's), in words; else undefined. */
function explainListenError(error: unknown): string | undefined {
  type SystemError = {
    code?: unknown;
    syscall?: unknown;
    address?: unknown;
    port?: unknown;
    cause?: unknown;
  };
  for (let at = error as SystemError | undefined; at; at = at.cause as SystemError | undefined) {
    if (at.syscall !== "listen") continue;
    const host = typeof at.address === "string" ? at.address : "this host";
    const port = typeof at.port === "number" ? String(at.port) : "(given)";
    if (at.code === "EADDRINUSE")
      return `port ${port} on ${host} is taken by another process (another tollgate, or any other server); stop it or choose another port with --port`;
    if (at.code === "EADDRNOTAVAIL")
      return `${host} is not an address of this machine, so nothing can listen on it; give --host one of its addresses (127.0.0.1 for this machine only)`;
    if (at.code === "EACCES")
      return `port ${port} on ${host} needs privileges this user lacks (ports below 1024 usually do); choose a port from 1024 up with --port`;
  }
  return undefined;
}

function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(commands, name);
}

// src/cli/main.ts and dist/cli/main.js both sit two levels below the package root.
function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(manifest.version);
}
