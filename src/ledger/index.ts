export {
  type ApplyMigrationsParameters,
  type ApplyMigrationsReturnType,
  applyMigrations,
} from "./applyMigrations.js";
export type {
  AlsoWrite,
  BindChannelChainResult,
  ChannelChain,
  ChannelConfigRecord,
  ChannelLedger,
  ChannelPendingRequest,
  ChannelRecord,
  ChannelTotals,
  ChannelUpdate,
  SetAsideChannel,
} from "./ChannelLedger.js";
export { channelShortfallAtomic } from "./channelShortfall.js";
export { createChannelLedger } from "./createChannelLedger.js";
export { type CreateLedgerParameters, createLedger, type Ledger } from "./createLedger.js";
export {
  createLedgerInsights,
  type LedgerBacklog,
  type LedgerInsights,
  type ModelInsight,
  type RevenueBucket,
} from "./createLedgerInsights.js";
export { createMemoryPayerQuotas, createPayerQuotas } from "./createPayerQuotas.js";
export { type CreatePaymentLedgerParameters, createPaymentLedger } from "./createPaymentLedger.js";
export { type CreatePgliteClientParameters, createPgliteClient } from "./createPgliteClient.js";
export { type CreatePostgresClientParameters, createPostgresClient } from "./createPostgresClient.js";
export { createReplicaRegistry } from "./createReplicaRegistry.js";
export { createSettlementLog } from "./createSettlementLog.js";
export { ledgerFailureMayPass } from "./ledgerError.js";
export { ledgerMigrations, type Migration } from "./ledgerMigrations.js";
export { isRunning, type LockFileParameters, lockFile, processPlace } from "./lockFile.js";
export {
  type AuthorizationKeyInput,
  type NormalizedAuthorizationKey,
  normalizeAuthorizationKey,
  normalizeNonce,
  normalizePayer,
} from "./normalizeAuthorizationKey.js";
export { ledgerLockPath, type OpenLedgerParameters, openLedger } from "./openLedger.js";
export {
  MAX_CLOCK_SKEW_MS,
  type OpenPostgresLedgerParameters,
  openPostgresLedger,
} from "./openPostgresLedger.js";
export type {
  PayerQuotaKind,
  PayerQuotaScope,
  PayerQuotas,
  TakePayerQuotaResult,
} from "./PayerQuotas.js";
export type {
  ClaimPaymentInput,
  ClaimPaymentResult,
  ClaimWithinFundsOptions,
  PaymentLedger,
  PaymentModelTotals,
  PaymentRecord,
  PaymentsByStatusOptions,
  PendingForRecoveryOptions,
  RecentPaymentsOptions,
  SettledCharge,
  SettledSinceOptions,
  TokenUsage,
} from "./PaymentLedger.js";
export { PaymentTransitionError, type PaymentTransitionErrorParameters } from "./PaymentTransitionError.js";
export { type ChannelRowOutcome, channelRowWrite } from "./paymentRowWrites.js";
export {
  canTransitionPayment,
  isFinalPaymentStatus,
  isPaymentStatus,
  type PaymentStatus,
  paymentStatuses,
  paymentTransitions,
  pendingPaymentStatuses,
} from "./paymentStatus.js";
export type { JoinReplicasParameters, ReplicaRecord, ReplicaRegistry } from "./ReplicaRegistry.js";
export type {
  BeginSettlementResult,
  InFlightSettlementsOptions,
  SettlementFailure,
  SettlementLog,
  SettlementRecord,
  SettlementStatus,
  SettlementSuccess,
} from "./SettlementLog.js";
export type { SqlClient, SqlExecutor, SqlRow } from "./SqlClient.js";
