import { pino } from "pino";

/** The logger every library part takes; pino's interface. */
export type Logger = pino.Logger;

/** A logger that writes nothing, the default for library code. */
export const silentLogger: Logger = pino({ level: "silent" });
