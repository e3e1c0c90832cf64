import { TollgateError } from "../errors/index.js";
import type { FacilitatorEvent } from "../facilitator/index.js";
import type { BillingEvent } from "../gateway/index.js";

/**
 * Where the reliability suite kills a gateway to prove recovery: after the claim, at the first output,
 * after metering (usage recorded, settlement not begun), after the settlement transaction is confirmed
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

/** The event at which each point is reached: billing events, except the facilitator's confirmed transfer. */
const billingEventAt: Partial<Record<FaultPoint, BillingEvent["type"]>> = {
  after_claim: "verified",
  mid_stream: "served",
  after_metering: "metered",
  after_settlement: "settled",
};

/**
 * `TOLLGATE_FAULT_POINT=after_claim` (or another point) as event listeners that SIGKILL this process when
 * a request reaches that point; nothing for an empty value. The gateway needs no hook of its own: the
 * points are its ordinary billing and facilitator events.
 */
export function crashHooksFromFaultPoint(wanted: string | undefined): {
  onBillingEvent?: (event: BillingEvent) => void;
  onFacilitatorEvent?: (event: FacilitatorEvent) => void;
} {
  if (!wanted) return {};
  if (!(faultPoints as readonly string[]).includes(wanted)) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `TOLLGATE_FAULT_POINT must be one of ${faultPoints.join(", ")}`,
    });
  }
  const crash = () => process.kill(process.pid, "SIGKILL");
  if (wanted === "after_broadcast")
    return { onFacilitatorEvent: (event) => event.type === "settled" && crash() };
  const type = billingEventAt[wanted as FaultPoint];
  // A stream's first output, not a JSON answer's: the crash must leave a row in `serving`.
  return {
    onBillingEvent: (event) => event.type === type && (event.type !== "served" || event.stream) && crash(),
  };
}
