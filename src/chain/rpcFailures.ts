import { AsyncLocalStorage } from "node:async_hooks";

/** What went wrong with the chain RPC during one facilitator operation. */
export type RpcFailureScope = { transportError?: unknown };

const storage = new AsyncLocalStorage<RpcFailureScope>();

/**
 * Runs `fn` with a scope that records chain-RPC transport failures, so that a verify whose
 * simulation failed only because the RPC was unreachable is told apart from a bad payment.
 */
export async function withRpcFailureScope<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; scope: RpcFailureScope }> {
  const scope: RpcFailureScope = {};
  const result = await storage.run(scope, fn);
  return { result, scope };
}

/** Records a transport failure in the current scope, if any. */
export function recordRpcTransportFailure(error: unknown): void {
  const scope = storage.getStore();
  if (scope && scope.transportError === undefined) scope.transportError = error;
}

/** True when `error` says the RPC could not be reached or did not answer (not a revert). */
export function isTransportError(error: unknown): boolean {
  for (let current = error; current; current = (current as { cause?: unknown }).cause) {
    const name = (current as { name?: string }).name;
    if (name === "HttpRequestError" || name === "TimeoutError" || name === "WebSocketRequestError")
      return true;
    const code = (current as { code?: string }).code;
    if (code === "ECONNREFUSED" || code === "ECONNRESET" || code === "ETIMEDOUT" || code === "UND_ERR_SOCKET")
      return true;
    if (current === (current as { cause?: unknown }).cause) break;
  }
  return false;
}
