export { closestName } from "./closestName.js";
export { HTTP_STATUS_OF, httpStatusOf, RETRY_AFTER_SECONDS_OF } from "./httpStatusOf.js";
export { type Logger, silentLogger } from "./logger.js";
export { presentsToken } from "./presentsToken.js";
export {
  currentRequestId,
  REQUEST_ID_HEADER,
  requestIdOf,
  runWithRequestId,
} from "./requestContext.js";
export {
  isTollgateError,
  TollgateError,
  type TollgateErrorCode,
  type TollgateErrorParameters,
} from "./TollgateError.js";
export { explainIssue } from "./unknownKeys.js";
