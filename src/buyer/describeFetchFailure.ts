/**
 * A request that got no answer at all (nothing listens, an unknown host, a refused port), told in
 * words a person can act on; undefined for any other error.
 * @example
 * describeFetchFailure(error) // "nothing answers at 127.0.0.1:4999 (connection refused): …"
 */
export function describeFetchFailure(error: unknown): string | undefined {
  if (!(error instanceof TypeError) || error.message !== "fetch failed") return undefined;
  const cause = (error as { cause?: Record<string, unknown> }).cause ?? {};
  const code = cause.code;
  const where =
    typeof cause.address === "string"
      ? `${cause.address.includes(":") ? `[${cause.address}]` : cause.address}${cause.port === undefined ? "" : `:${String(cause.port)}`}`
      : undefined;
  if (code === "ECONNREFUSED")
    return `nothing answers at ${where ?? "that address"} (connection refused): check the URL, and that the gateway is running there (tollgate dev prints its URL)`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN")
    return `the host ${typeof cause.hostname === "string" ? cause.hostname : "in the URL"} cannot be found (DNS lookup failed): check the URL`;
  if (
    code === "ETIMEDOUT" ||
    code === "UND_ERR_CONNECT_TIMEOUT" ||
    code === "EHOSTUNREACH" ||
    code === "ENETUNREACH"
  )
    return `${where ?? "the host"} cannot be reached (${String(code)}): check the URL and the network`;
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET")
    return `${where ?? "the server"} closed the connection before answering (${String(code)}): is that URL an HTTP server?`;
  if (cause.message === "bad port")
    return 'the URL\'s port is one that fetch refuses to connect to (a "bad port" of the Fetch standard, such as 9 or 6000): use another port';
  return undefined;
}

/** True when a connection broke before any response, typically a kept-alive one the server closed. */
export function connectionReset(error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown } })?.cause?.code;
  return code === "ECONNRESET" || code === "EPIPE" || code === "UND_ERR_SOCKET";
}

/** True when this attempt certainly never reached the seller (it could not connect). */
export function neverConnected(error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown } })?.cause?.code;
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
}
