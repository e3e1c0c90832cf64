import type { ServerResponse } from "node:http";
import type { FakeServedRequest } from "./fakeServerTypes.js";

/** Answers with a JSON body and notes the status and outcome on the request's record. */
export function sendJson(
  response: ServerResponse,
  record: FakeServedRequest,
  status: number,
  body: unknown,
  outcome: FakeServedRequest["outcome"],
): void {
  record.status = status;
  record.outcome = outcome;
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}
