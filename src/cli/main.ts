import { isTollgateError } from "../errors/index.js";
import { chatCommand, chatUsage } from "./chatCommand.js";
import { exitCodes, printError, printLine } from "./cliSupport.js";
import { devCommand, devUsage } from "./devCommand.js";
import { devnetCommand, devnetUsage } from "./devnetCommand.js";
import { facilitatorCommand, facilitatorUsage } from "./facilitatorCommand.js";
import { gatewayCommand, gatewayUsage } from "./gatewayCommand.js";
import { ledgerCommand, ledgerUsage } from "./ledgerCommand.js";
import { payCommand, payUsage } from "./payCommand.js";
import { reconcileCommand, reconcileUsage } from "./reconcileCommand.js";
import { spendCommand, spendUsage } from "./spendCommand.js";

type Command = { run(argv: string[]): Promise<number>; usage: string };

const commands: Record<string, Command> = {
  dev: { run: devCommand, usage: devUsage },
  gateway: { run: gatewayCommand, usage: gatewayUsage },
  ledger: { run: ledgerCommand, usage: ledgerUsage },
  reconcile: { run: reconcileCommand, usage: reconcileUsage },
  devnet: { run: devnetCommand, usage: devnetUsage },
  facilitator: { run: facilitatorCommand, usage: facilitatorUsage },
  pay: { run: payCommand, usage: payUsage },
  chat: { run: chatCommand, usage: chatUsage },
  spend: { run: spendCommand, usage: spendUsage },
};

function usage(): string {
  return [
    "tollgate — pay-per-token billing for AI inference over x402",
    "",
    ...Object.values(commands).map((command) => command.usage),
  ].join("\n\n");
}

/** The `tollgate` command line; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    printLine(usage());
    return name ? exitCodes.ok : exitCodes.usage;
  }
  const command = commands[name];
  if (!command) {
    printError(`tollgate: unknown command '${name}'\n\n${usage()}`);
    return exitCodes.usage;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    printLine(command.usage);
    return exitCodes.ok;
  }
  try {
    return await command.run(rest);
  } catch (error) {
    if (isTollgateError(error, "TOLLGATE_CONFIG_INVALID")) {
      printError(`tollgate: ${error.shortMessage}\n\n${command.usage}`);
      return exitCodes.usage;
    }
    printError(`tollgate ${name}: ${isTollgateError(error) ? error.shortMessage : (error as Error).message}`);
    return exitCodes.failure;
  }
}
