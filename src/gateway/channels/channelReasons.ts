/**
 * Reason codes of the `batch-settlement` scheme as `@x402/evm`'s client reads them: a 402 with
 * `cumulativeMismatch` (or `cumulativeBelowClaimed`) and the channel state in the offer's `extra`
 * makes the client resync and sign again.
 */
export const ChannelReason = {
  cumulativeMismatch: "invalid_batch_settlement_evm_cumulative_amount_mismatch",
  cumulativeBelowClaimed: "invalid_batch_settlement_evm_cumulative_below_claimed",
  cumulativeExceedsBalance: "invalid_batch_settlement_evm_cumulative_exceeds_balance",
  channelBusy: "invalid_batch_settlement_evm_channel_busy",
  voucherSignature: "invalid_batch_settlement_evm_voucher_signature",
  channelIdMismatch: "invalid_batch_settlement_evm_channel_id_mismatch",
  configMismatch: "invalid_batch_settlement_evm_channel_config_mismatch",
  withdrawalPending: "invalid_batch_settlement_evm_withdrawal_pending",
  missingChannel: "invalid_batch_settlement_evm_missing_channel",
  refundNoBalance: "invalid_batch_settlement_evm_refund_no_balance",
  refundAmountInvalid: "invalid_batch_settlement_evm_refund_amount_invalid",
  depositFailed: "invalid_batch_settlement_evm_deposit_failed",
  nothingToSettle: "invalid_batch_settlement_evm_nothing_to_settle",
} as const;
