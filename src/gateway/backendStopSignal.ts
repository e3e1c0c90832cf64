/**
 * The signal a paid route's handler gives its backend call. It aborts when the buyer leaves before the
 * answer began, and when `stop` is called (the payment was refused while the handler ran). Once the
 * handler answered with a stream, a buyer who leaves no longer aborts it: the billing session reads
 * that stream and stops the backend itself, or reads on for the usage report of reasoning already
 * spent (`hiddenReasoning`). A JSON answer's backend call is still stopped when the buyer leaves.
 */
export function backendStopSignal(buyerSignal: AbortSignal): {
  signal: AbortSignal;
  stop(reason: unknown): void;
  /** The handler answered: a stream's backend is from now on the billing session's to stop. */
  answered(response: Response | undefined): void;
} {
  const controller = new AbortController();
  const buyerLeft = () => controller.abort(new Error("the buyer left"));
  if (buyerSignal.aborted) buyerLeft();
  else buyerSignal.addEventListener("abort", buyerLeft, { once: true });
  return {
    signal: controller.signal,
    stop: (reason) => controller.abort(reason),
    answered(response) {
      if (response?.body && response.headers.get("content-type")?.includes("text/event-stream"))
        buyerSignal.removeEventListener("abort", buyerLeft);
    },
  };
}
