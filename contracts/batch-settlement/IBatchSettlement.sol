// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Types, events and errors of the x402 `batch-settlement` contract
/// @notice Spec: x402 `specs/schemes/batch-settlement/scheme_batch_settlement_evm.md`.
interface IBatchSettlement {
    /// @notice A channel's immutable identity; its EIP-712 hash is the channel id.
    struct ChannelConfig {
        address payer;
        /// @dev An EOA that signs vouchers, or zero to verify vouchers against `payer` (EIP-1271 too).
        address payerAuthorizer;
        address receiver;
        /// @dev Signs claim batches and refunds; never zero.
        address receiverAuthorizer;
        address token;
        /// @dev Seconds between `initiateWithdraw` and `finalizeWithdraw`: 15 minutes to 30 days.
        uint40 withdrawDelay;
        bytes32 salt;
    }

    /// @notice The payer's signed, cumulative ceiling on what the receiver may claim from a channel.
    struct Voucher {
        ChannelConfig channel;
        uint128 maxClaimableAmount;
    }

    /// @notice One row of a claim: the voucher, its signature and the new cumulative claimed total.
    struct VoucherClaim {
        Voucher voucher;
        bytes signature;
        uint128 totalClaimed;
    }

    /// @notice On-chain state of a channel. `balance` still includes what has been claimed.
    struct Channel {
        uint128 balance;
        uint128 totalClaimed;
    }

    /// @notice A payer's timed withdrawal in progress.
    struct PendingWithdrawal {
        uint128 amount;
        uint40 initiatedAt;
    }

    /// @notice Per receiver and token: claimed from all channels, and already transferred out.
    struct ReceiverTotals {
        uint128 totalClaimed;
        uint128 totalSettled;
    }

    /// @notice The first deposit into an empty channel (again after it was drained).
    event ChannelCreated(bytes32 indexed channelId, ChannelConfig config);
    /// @notice Unclaimed escrow returned to zero with nothing claimed.
    event ChannelClosed(bytes32 indexed channelId, ChannelConfig config);
    event Deposited(bytes32 indexed channelId, address indexed collector, uint128 amount, uint128 balance);
    event Claimed(bytes32 indexed channelId, uint128 amount, uint128 totalClaimed);
    event Settled(address indexed receiver, address indexed token, address indexed sender, uint128 amount);
    event WithdrawInitiated(bytes32 indexed channelId, uint128 amount, uint256 finalizableAt);
    event Withdrawn(bytes32 indexed channelId, uint128 amount);
    event Refunded(bytes32 indexed channelId, uint128 amount, uint256 nonce);

    error ZeroAmount();
    error ZeroAddress();
    error WithdrawDelayOutOfRange(uint40 withdrawDelay);
    /// @notice The collector did not deliver exactly the deposit amount to this contract.
    error DepositNotReceived(uint256 expected, uint256 received);
    error BalanceOverflow();
    error EmptyClaimBatch();
    error ClaimAboveVoucher(bytes32 channelId);
    error ClaimAboveBalance(bytes32 channelId);
    error InvalidVoucherSignature(bytes32 channelId);
    /// @notice Claim rows under one authorizer signature must share the receiver authorizer.
    error MixedReceiverAuthorizers();
    error InvalidAuthorizerSignature();
    error NotReceiverOrAuthorizer();
    error NotPayerOrAuthorizer();
    error WithdrawAmountInvalid(uint128 requested, uint128 available);
    error WithdrawalPending();
    error NoPendingWithdrawal();
    error WithdrawDelayNotElapsed(uint256 finalizableAt);
    error RefundNonceMismatch(uint256 expected, uint256 given);
}

/// @notice What `deposit` calls to pull a payer's tokens into the batch settlement contract.
interface IDepositCollector {
    /// @notice Moves exactly `amount` of `token` from `payer` to the batch settlement contract,
    /// authorized by the payer's signature in `data` that binds `channelId`.
    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data) external;
}
