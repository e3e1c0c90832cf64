import { isTollgateError, TollgateError } from "../errors/index.js";
import { type ErrorAnswer, errorAnswer } from "./errorAnswer.js";
import type { RouteAdapter } from "./routes/index.js";

/**
 * The body of a paid request as its route reads it: JSON, or for a route that takes
 * `multipart/form-data` (`readForm`: a transcription's audio file) its form, read into fields. A body
 * that is neither is refused with TOLLGATE_REQUEST_INVALID; a form's own problems name their field.
 * A body above the gateway's limit fails as the limit makes it fail (413), not as malformed.
 */
export async function readRequestBody(request: Request, route: RouteAdapter | undefined): Promise<unknown> {
  if (route?.readForm) {
    const contentType = request.headers.get("content-type") ?? "";
    if (!/^\s*multipart\/form-data\b/i.test(contentType))
      throw malformed(`the request body must be multipart/form-data for POST /v1${route.path}`);
    let form: FormData;
    try {
      form = await request.formData();
    } catch (error) {
      if ((error as Error | undefined)?.name === "BodyLimitError") throw error;
      throw malformed("the request body is not a readable multipart/form-data form", error);
    }
    return route.readForm(form);
  }
  try {
    return await request.json();
  } catch (error) {
    if (isTollgateError(error)) throw error;
    throw malformed("the request body must be JSON", error);
  }
}

function malformed(shortMessage: string, cause?: unknown): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_REQUEST_INVALID",
    shortMessage,
    details: { field: null },
    cause,
  });
}

/** The 400 of a body `readRequestBody` refused, naming the field when one is at fault (`param`). */
export function requestInvalidAnswer(error: unknown, fallback: string): ErrorAnswer {
  if (isTollgateError(error, "TOLLGATE_REQUEST_INVALID"))
    return errorAnswer("TOLLGATE_REQUEST_INVALID", error.shortMessage, {
      param: error.details.field ?? null,
    });
  return errorAnswer("TOLLGATE_REQUEST_INVALID", fallback, { param: null });
}
