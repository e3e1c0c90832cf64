export { createFacilitator, type CreateFacilitatorParameters, type TollgateFacilitator } from "./createFacilitator.js";
export { createFacilitatorApp, type CreateFacilitatorAppParameters } from "./createFacilitatorApp.js";
export { hasMatchingTransfer } from "./findTransfer.js";
export { type SettlementKey, settlementKeyOf, settlementKeyString } from "./settlementKey.js";
export { createMemorySettlementStore, type SettlementRecord, type SettlementStore } from "./settlementStore.js";
export { serveFacilitator, type ServeFacilitatorParameters } from "./serveFacilitator.js";
