import { Counter, type Registry } from "prom-client";
import type { FacilitatorEventListener } from "./FacilitatorEvent.js";

/**
 * The facilitator's Prometheus families, registered in `registry`: `tollgate_sponsored_approvals_total`
 * and `tollgate_sponsored_gas_wei_total` (`{network,kind}`, kind = the gas-sponsoring extension), and
 * `tollgate_facilitator_settlements_total{network,scheme}`. Returns the listener that feeds them.
 * @example
 * const registry = new Registry();
 * const facilitator = createFacilitator({ ..., onFacilitatorEvent: createFacilitatorMetrics({ registry }) });
 */
export function createFacilitatorMetrics({ registry }: { registry: Registry }): FacilitatorEventListener {
  const sponsoredApprovals = new Counter({
    name: "tollgate_sponsored_approvals_total",
    help: "Permit2 approvals whose gas the facilitator paid, by network and gas-sponsoring extension.",
    labelNames: ["network", "kind"] as const,
    registers: [registry],
  });
  const sponsoredGasWei = new Counter({
    name: "tollgate_sponsored_gas_wei_total",
    help: "Native gas (wei) the facilitator spent on settlements that carried a sponsored approval.",
    labelNames: ["network", "kind"] as const,
    registers: [registry],
  });
  const settlements = new Counter({
    name: "tollgate_facilitator_settlements_total",
    help: "Settlements the facilitator confirmed on chain, by network and scheme.",
    labelNames: ["network", "scheme"] as const,
    registers: [registry],
  });
  return function recordFacilitatorEvent(event) {
    if (event.type === "sponsored_approval") {
      sponsoredApprovals.inc({ network: event.network, kind: event.kind });
      sponsoredGasWei.inc({ network: event.network, kind: event.kind }, Number(event.gasCostWei));
    } else if (event.type === "settled") {
      settlements.inc({ network: event.network, scheme: event.scheme });
    }
  };
}
