/** Resolves on the event loop's next turn, after the I/O this turn started (a request's bytes on their way). */
export const nextTurn = (): Promise<void> =>
  new Promise<void>((resolve) =>
    typeof setImmediate === "function" ? setImmediate(resolve) : setTimeout(resolve, 0),
  );
