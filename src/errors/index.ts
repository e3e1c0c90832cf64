export { type Logger, silentLogger } from "./logger.js";
export {
  isTollgateError,
  TollgateError,
  type TollgateErrorCode,
  type TollgateErrorParameters,
} from "./TollgateError.js";
