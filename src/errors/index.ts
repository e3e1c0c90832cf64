export { HTTP_STATUS_OF, httpStatusOf, RETRY_AFTER_SECONDS_OF } from "./httpStatusOf.js";
export { type Logger, silentLogger } from "./logger.js";
export {
  isTollgateError,
  TollgateError,
  type TollgateErrorCode,
  type TollgateErrorParameters,
} from "./TollgateError.js";
