/**
 * Where a test may stop the process to prove that recovery works: after the claim, mid-stream,
 * after metering (usage recorded, settlement not begun), after the settlement transaction is mined
 * but before anything records it, and after the facilitator recorded it but before the payment row did.
 */
export type FaultPoint =
  | "after_claim"
  | "mid_stream"
  | "after_metering"
  | "after_broadcast"
  | "after_settlement";

/** Every fault point, in the order a request passes them. */
export const faultPoints: readonly FaultPoint[] = [
  "after_claim",
  "mid_stream",
  "after_metering",
  "after_broadcast",
  "after_settlement",
];

/**
 * A test-only hook called when a request passes a fault point; the CLI wires it from
 * `TOLLGATE_FAULT_POINT` to kill the process there. Libraries never read the environment.
 */
export type FaultInjection = (point: FaultPoint) => void;

/** Narrows a string (an environment variable, a flag) to a `FaultPoint`. */
export function isFaultPoint(value: unknown): value is FaultPoint {
  return typeof value === "string" && (faultPoints as readonly string[]).includes(value);
}
