/**
 * Every reason code Tollgate sends or understands, in one place. The values are wire strings
 * and never change: the x402 ones come from the spec and `@x402/evm`, Tollgate's own start
 * with `tollgate_`.
 * @see https://github.com/x402-foundation/x402/blob/main/specs/x402-specification-v2.md (Error Codes)
 */
export const ReasonCode = {
  // x402, scheme independent
  insufficientFunds: "insufficient_funds",
  invalidNetwork: "invalid_network",
  invalidPayload: "invalid_payload",
  invalidPaymentRequirements: "invalid_payment_requirements",
  invalidScheme: "invalid_scheme",
  unsupportedScheme: "unsupported_scheme",
  invalidX402Version: "invalid_x402_version",
  invalidTransactionState: "invalid_transaction_state",
  unexpectedVerifyError: "unexpected_verify_error",
  unexpectedSettleError: "unexpected_settle_error",

  // x402 `exact` on EVM (EIP-3009)
  exactValidAfterInFuture: "invalid_exact_evm_payload_authorization_valid_after",
  exactValidBeforeExpired: "invalid_exact_evm_payload_authorization_valid_before",
  exactAuthorizationValue: "invalid_exact_evm_authorization_value",
  exactInvalidSignature: "invalid_exact_evm_signature",
  exactRecipientMismatch: "invalid_exact_evm_recipient_mismatch",
  exactNonceAlreadyUsed: "invalid_exact_evm_nonce_already_used",
  exactTransactionFailed: "invalid_exact_evm_transaction_failed",

  // x402 `upto` on EVM
  uptoSettlementExceedsAmount: "invalid_upto_evm_payload_settlement_exceeds_amount",
  uptoAmountExceedsPermitted: "upto_amount_exceeds_permitted",
  uptoUnauthorizedFacilitator: "upto_unauthorized_facilitator",
  uptoFacilitatorMismatch: "upto_facilitator_mismatch",
  uptoInvalidScheme: "invalid_upto_evm_scheme",
  uptoNetworkMismatch: "invalid_upto_evm_network_mismatch",
  uptoTransactionFailed: "invalid_upto_evm_transaction_failed",

  // x402 Permit2 (shared by `upto` and `exact` via Permit2)
  permit2InvalidSpender: "invalid_permit2_spender",
  permit2RecipientMismatch: "invalid_permit2_recipient_mismatch",
  permit2DeadlineExpired: "permit2_deadline_expired",
  permit2NotYetValid: "permit2_not_yet_valid",
  permit2AmountMismatch: "permit2_amount_mismatch",
  permit2TokenMismatch: "permit2_token_mismatch",
  permit2InvalidSignature: "invalid_permit2_signature",
  permit2AllowanceRequired: "permit2_allowance_required",
  permit2InsufficientBalance: "permit2_insufficient_balance",
  permit2InvalidNonce: "permit2_invalid_nonce",
  permit2SimulationFailed: "permit2_simulation_failed",

  // x402 gas-sponsoring extensions (eip2612GasSponsoring, erc20ApprovalGasSponsoring)
  eip2612InvalidFormat: "invalid_eip2612_extension_format",
  eip2612FromMismatch: "eip2612_from_mismatch",
  eip2612AssetMismatch: "eip2612_asset_mismatch",
  eip2612SpenderNotPermit2: "eip2612_spender_not_permit2",
  eip2612DeadlineExpired: "eip2612_deadline_expired",
  permit2612AmountMismatch: "permit2_2612_amount_mismatch",

  // Tollgate: the payment header on the way in
  paymentHeaderMissing: "tollgate_payment_header_missing",
  paymentHeaderTooLarge: "tollgate_payment_header_too_large",
  paymentHeaderNotBase64: "tollgate_payment_header_not_base64",
  paymentHeaderNotJson: "tollgate_payment_header_not_json",
  paymentHeaderTooDeep: "tollgate_payment_header_too_deep",
  paymentRequirementsMismatch: "tollgate_payment_requirements_mismatch",

  // Tollgate: the life of a payment
  authorizationReplayed: "tollgate_authorization_replayed",
  payerInDebt: "tollgate_payer_in_debt",
  authorizationExpiresTooSoon: "tollgate_authorization_expires_too_soon",
  facilitatorUnavailable: "tollgate_facilitator_unavailable",
  backendFailedBeforeOutput: "tollgate_backend_failed_before_output",
  clientDisconnected: "tollgate_client_disconnected",
  settlementFailed: "tollgate_settlement_failed",
  gasSponsoringRefused: "tollgate_gas_sponsoring_refused",
  eip2612PermitInvalid: "tollgate_eip2612_permit_invalid",
  eip2612PermitInFlight: "tollgate_eip2612_permit_in_flight",
  channelDepositTooSmall: "tollgate_channel_deposit_too_small",
  refundLimitReached: "tollgate_refund_limit_reached",
  /** A facilitator's answer to a batch-settlement claim that would raise no channel's claimed total. */
  claimMovesNothing: "tollgate_claim_moves_nothing",

  // Tollgate: the streaming receipt, read by the buyer
  receiptAbsent: "tollgate_receipt_absent",
  receiptInvalid: "tollgate_receipt_invalid",
} as const;

/** One of the stable reason strings above. */
export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode];

const knownReasonCodes: ReadonlySet<string> = new Set(Object.values(ReasonCode));

/** True when `value` is a reason code listed here (a facilitator may send others). */
export function isKnownReasonCode(value: string): value is ReasonCode {
  return knownReasonCodes.has(value);
}
