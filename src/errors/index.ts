export { isTollgateError, TollgateError, type TollgateErrorCode, type TollgateErrorParameters } from "./TollgateError.js";
export { type Logger, silentLogger } from "./logger.js";
