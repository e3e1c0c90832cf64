// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IBatchSettlement, IDepositCollector} from "./IBatchSettlement.sol";

/// @title x402 batch settlement (unidirectional payment channels)
/// @notice Payers deposit once into a channel and sign cumulative vouchers off-chain; receivers
/// claim many channels' latest vouchers in one call and `settle` sweeps claims in one transfer.
/// @dev Spec: x402 `scheme_batch_settlement_evm.md`. Built for placement with `anvil_setCode`:
/// no constructor and no immutables; the EIP-712 domain is derived from `block.chainid` and
/// `address(this)` on each use, and the reentrancy guard lives in transient storage.
contract x402BatchSettlement is IBatchSettlement, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    uint40 public constant MIN_WITHDRAW_DELAY = 15 minutes;
    uint40 public constant MAX_WITHDRAW_DELAY = 30 days;

    bytes32 public constant CHANNEL_CONFIG_TYPEHASH = keccak256(
        "ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)"
    );
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint128 maxClaimableAmount)");
    bytes32 public constant REFUND_TYPEHASH = keccak256("Refund(bytes32 channelId,uint256 nonce,uint128 amount)");
    bytes32 public constant CLAIM_BATCH_TYPEHASH = keccak256(
        "ClaimBatch(ClaimEntry[] claims)ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)"
    );
    bytes32 public constant CLAIM_ENTRY_TYPEHASH =
        keccak256("ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("x402 Batch Settlement");
    bytes32 private constant VERSION_HASH = keccak256("1");

    mapping(bytes32 channelId => Channel) public channels;
    mapping(bytes32 channelId => PendingWithdrawal) public pendingWithdrawals;
    mapping(address receiver => mapping(address token => ReceiverTotals)) public receivers;
    /// @notice The nonce the next `refundWithSignature` of a channel must carry.
    mapping(bytes32 channelId => uint256) public refundNonce;

    // ─── deposit ────────────────────────────────────────────────────────────────────────────

    /// @notice Funds a channel (creating it on first use) through `collector`, which pulls the
    /// payer's tokens on the strength of the payer's signature in `collectorData`.
    /// @dev Any collector is accepted: the contract credits only what its own balance gained.
    function deposit(ChannelConfig calldata config, uint128 amount, address collector, bytes calldata collectorData)
        external
        nonReentrant
    {
        if (amount == 0) revert ZeroAmount();
        if (config.payer == address(0) || config.receiver == address(0) || config.receiverAuthorizer == address(0))
        {
            revert ZeroAddress();
        }
        if (config.withdrawDelay < MIN_WITHDRAW_DELAY || config.withdrawDelay > MAX_WITHDRAW_DELAY) {
            revert WithdrawDelayOutOfRange(config.withdrawDelay);
        }
        bytes32 channelId = getChannelId(config);
        IERC20 token = IERC20(config.token);
        uint256 before = token.balanceOf(address(this));
        IDepositCollector(collector).collect(config.payer, config.token, amount, channelId, collectorData);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != amount) revert DepositNotReceived(amount, received);

        Channel storage channel = channels[channelId];
        (uint128 balance, uint128 totalClaimed) = (channel.balance, channel.totalClaimed);
        if (balance == 0 && totalClaimed == 0) emit ChannelCreated(channelId, config);
        if (uint256(balance) + amount > type(uint128).max) revert BalanceOverflow();
        channel.balance = balance + amount;
        emit Deposited(channelId, collector, amount, balance + amount);
    }

    // ─── claim and settle ───────────────────────────────────────────────────────────────────

    /// @notice Raises the claimed total of each row's channel to the row's `totalClaimed`; the
    /// caller must be the receiver or the receiver authorizer of every row.
    function claim(VoucherClaim[] calldata voucherClaims) external nonReentrant {
        bytes32[] memory channelIds = _channelIds(voucherClaims);
        for (uint256 i; i < voucherClaims.length; ++i) {
            ChannelConfig calldata channel = voucherClaims[i].voucher.channel;
            if (msg.sender != channel.receiver && msg.sender != channel.receiverAuthorizer) {
                revert NotReceiverOrAuthorizer();
            }
        }
        _applyClaims(voucherClaims, channelIds);
    }

    /// @notice `claim` relayed by anyone holding the receiver authorizer's EIP-712 `ClaimBatch`
    /// signature over all rows (which must share that authorizer).
    function claimWithSignature(VoucherClaim[] calldata voucherClaims, bytes calldata authorizerSignature)
        external
        nonReentrant
    {
        bytes32[] memory channelIds = _channelIds(voucherClaims);
        address authorizer = voucherClaims[0].voucher.channel.receiverAuthorizer;
        for (uint256 i = 1; i < voucherClaims.length; ++i) {
            if (voucherClaims[i].voucher.channel.receiverAuthorizer != authorizer) revert MixedReceiverAuthorizers();
        }
        bytes32 digest = _claimBatchDigest(voucherClaims, channelIds);
        if (!SignatureChecker.isValidSignatureNow(authorizer, digest, authorizerSignature)) {
            revert InvalidAuthorizerSignature();
        }
        _applyClaims(voucherClaims, channelIds);
    }

    /// @notice Transfers everything claimed and not yet settled for `receiver` in `token` to
    /// `receiver`, in one transfer. Anyone may call it; with nothing to settle it does nothing.
    function settle(address receiver, address token) external nonReentrant {
        ReceiverTotals storage totals = receivers[receiver][token];
        uint128 claimed = totals.totalClaimed;
        uint128 amount = claimed - totals.totalSettled;
        if (amount == 0) return;
        totals.totalSettled = claimed;
        IERC20(token).safeTransfer(receiver, amount);
        emit Settled(receiver, token, msg.sender, amount);
    }

    // ─── payer exit: timed withdrawal ───────────────────────────────────────────────────────

    /// @notice Starts the payer's withdrawal of up to `amount` of unclaimed escrow; the receiver
    /// may still claim until `finalizeWithdraw` after the channel's delay.
    function initiateWithdraw(ChannelConfig calldata config, uint128 amount) external nonReentrant {
        _requirePayer(config);
        bytes32 channelId = getChannelId(config);
        Channel storage channel = channels[channelId];
        uint128 available = channel.balance - channel.totalClaimed;
        if (amount == 0 || amount > available) revert WithdrawAmountInvalid(amount, available);
        PendingWithdrawal storage pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt != 0) revert WithdrawalPending();
        pending.amount = amount;
        pending.initiatedAt = uint40(block.timestamp);
        emit WithdrawInitiated(channelId, amount, block.timestamp + config.withdrawDelay);
    }

    /// @notice Completes a withdrawal once its delay has passed, paying out no more than the
    /// escrow still unclaimed at this point.
    function finalizeWithdraw(ChannelConfig calldata config) external nonReentrant {
        _requirePayer(config);
        bytes32 channelId = getChannelId(config);
        PendingWithdrawal memory pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt == 0) revert NoPendingWithdrawal();
        uint256 finalizableAt = uint256(pending.initiatedAt) + config.withdrawDelay;
        if (block.timestamp < finalizableAt) revert WithdrawDelayNotElapsed(finalizableAt);
        delete pendingWithdrawals[channelId];
        Channel storage channel = channels[channelId];
        uint128 available = channel.balance - channel.totalClaimed;
        uint128 amount = pending.amount < available ? pending.amount : available;
        channel.balance -= amount;
        emit Withdrawn(channelId, amount);
        if (amount > 0) {
            _emitIfClosed(channelId, config, channel);
            IERC20(config.token).safeTransfer(config.payer, amount);
        }
    }

    // ─── payer exit: cooperative refund ─────────────────────────────────────────────────────

    /// @notice Returns up to `amount` of unclaimed escrow to the payer; by the receiver or its authorizer.
    function refund(ChannelConfig calldata config, uint128 amount) external nonReentrant {
        if (msg.sender != config.receiver && msg.sender != config.receiverAuthorizer) revert NotReceiverOrAuthorizer();
        _refund(getChannelId(config), config, amount);
    }

    /// @notice `refund` relayed by anyone holding the receiver authorizer's EIP-712 `Refund`
    /// signature for the channel's current refund nonce.
    function refundWithSignature(
        ChannelConfig calldata config,
        uint128 amount,
        uint256 nonce,
        bytes calldata receiverAuthorizerSignature
    ) external nonReentrant {
        bytes32 channelId = getChannelId(config);
        uint256 expected = refundNonce[channelId];
        if (nonce != expected) revert RefundNonceMismatch(expected, nonce);
        bytes32 digest = getRefundDigest(channelId, nonce, amount);
        if (!SignatureChecker.isValidSignatureNow(config.receiverAuthorizer, digest, receiverAuthorizerSignature)) {
            revert InvalidAuthorizerSignature();
        }
        _refund(channelId, config, amount);
    }

    // ─── batching ───────────────────────────────────────────────────────────────────────────

    /// @notice Runs several calls to this contract in one transaction (e.g. claim then refund).
    function multicall(bytes[] calldata data) external returns (bytes[] memory results) {
        results = new bytes[](data.length);
        for (uint256 i; i < data.length; ++i) {
            (bool success, bytes memory result) = address(this).delegatecall(data[i]);
            if (!success) {
                assembly ("memory-safe") {
                    revert(add(result, 32), mload(result))
                }
            }
            results[i] = result;
        }
    }

    // ─── views ──────────────────────────────────────────────────────────────────────────────

    /// @notice The channel id: the EIP-712 hash of `config` under this contract's domain.
    function getChannelId(ChannelConfig calldata config) public view returns (bytes32) {
        return _hashTypedData(keccak256(abi.encode(CHANNEL_CONFIG_TYPEHASH, config)));
    }

    function getVoucherDigest(bytes32 channelId, uint128 maxClaimableAmount) public view returns (bytes32) {
        return _hashTypedData(keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, maxClaimableAmount)));
    }

    function getRefundDigest(bytes32 channelId, uint256 nonce, uint128 amount) public view returns (bytes32) {
        return _hashTypedData(keccak256(abi.encode(REFUND_TYPEHASH, channelId, nonce, amount)));
    }

    function getClaimBatchDigest(VoucherClaim[] calldata voucherClaims) external view returns (bytes32) {
        return _claimBatchDigest(voucherClaims, _channelIds(voucherClaims));
    }

    /// @notice The EIP-712 domain separator for this chain and address.
    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    // ─── internals ──────────────────────────────────────────────────────────────────────────

    function _channelIds(VoucherClaim[] calldata voucherClaims) private view returns (bytes32[] memory ids) {
        if (voucherClaims.length == 0) revert EmptyClaimBatch();
        ids = new bytes32[](voucherClaims.length);
        for (uint256 i; i < voucherClaims.length; ++i) {
            ids[i] = getChannelId(voucherClaims[i].voucher.channel);
        }
    }

    function _claimBatchDigest(VoucherClaim[] calldata voucherClaims, bytes32[] memory channelIds)
        private
        view
        returns (bytes32)
    {
        bytes32[] memory entryHashes = new bytes32[](voucherClaims.length);
        for (uint256 i; i < voucherClaims.length; ++i) {
            VoucherClaim calldata row = voucherClaims[i];
            entryHashes[i] = keccak256(
                abi.encode(CLAIM_ENTRY_TYPEHASH, channelIds[i], row.voucher.maxClaimableAmount, row.totalClaimed)
            );
        }
        return _hashTypedData(keccak256(abi.encode(CLAIM_BATCH_TYPEHASH, keccak256(abi.encodePacked(entryHashes)))));
    }

    /// @dev A row at or below the channel's claimed total is already honoured and is skipped,
    /// so one stale row cannot sink a batch. Receiver totals are written once per run of rows
    /// sharing receiver and token.
    function _applyClaims(VoucherClaim[] calldata voucherClaims, bytes32[] memory channelIds) private {
        address runReceiver;
        address runToken;
        uint256 runAmount;
        for (uint256 i; i < voucherClaims.length; ++i) {
            VoucherClaim calldata row = voucherClaims[i];
            ChannelConfig calldata config = row.voucher.channel;
            bytes32 channelId = channelIds[i];
            uint128 newTotal = row.totalClaimed;
            if (newTotal > row.voucher.maxClaimableAmount) revert ClaimAboveVoucher(channelId);
            Channel storage channel = channels[channelId];
            (uint128 balance, uint128 oldTotal) = (channel.balance, channel.totalClaimed);
            if (newTotal > balance) revert ClaimAboveBalance(channelId);
            if (newTotal <= oldTotal) continue;
            if (!_isVoucherSigned(config, getVoucherDigest(channelId, row.voucher.maxClaimableAmount), row.signature)) {
                revert InvalidVoucherSignature(channelId);
            }
            channel.totalClaimed = newTotal;
            emit Claimed(channelId, newTotal - oldTotal, newTotal);
            if (config.receiver != runReceiver || config.token != runToken) {
                _creditReceiver(runReceiver, runToken, runAmount);
                (runReceiver, runToken, runAmount) = (config.receiver, config.token, 0);
            }
            runAmount += newTotal - oldTotal;
        }
        _creditReceiver(runReceiver, runToken, runAmount);
    }

    function _creditReceiver(address receiver, address token, uint256 amount) private {
        // Cannot overflow: every claimed unit is backed by a deposited uint128 balance of `token`.
        if (amount != 0) receivers[receiver][token].totalClaimed += uint128(amount);
    }

    function _isVoucherSigned(ChannelConfig calldata config, bytes32 digest, bytes calldata signature)
        private
        view
        returns (bool)
    {
        if (config.payerAuthorizer == address(0)) {
            return SignatureChecker.isValidSignatureNow(config.payer, digest, signature);
        }
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(digest, signature);
        return error == ECDSA.RecoverError.NoError && signer == config.payerAuthorizer;
    }

    /// @dev The nonce advances first, even when nothing is left to refund (spec).
    function _refund(bytes32 channelId, ChannelConfig calldata config, uint128 amount) private {
        if (amount == 0) revert ZeroAmount();
        uint256 nonce = refundNonce[channelId]++;
        Channel storage channel = channels[channelId];
        uint128 available = channel.balance - channel.totalClaimed;
        uint128 refunded = amount < available ? amount : available;
        if (refunded == 0) return;
        channel.balance -= refunded;
        PendingWithdrawal storage pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt != 0) {
            if (refunded >= pending.amount) delete pendingWithdrawals[channelId];
            else pending.amount -= refunded;
        }
        emit Refunded(channelId, refunded, nonce);
        _emitIfClosed(channelId, config, channel);
        IERC20(config.token).safeTransfer(config.payer, refunded);
    }

    function _emitIfClosed(bytes32 channelId, ChannelConfig calldata config, Channel storage channel) private {
        if (channel.balance == 0 && channel.totalClaimed == 0) emit ChannelClosed(channelId, config);
    }

    function _requirePayer(ChannelConfig calldata config) private view {
        if (msg.sender != config.payer && (config.payerAuthorizer == address(0) || msg.sender != config.payerAuthorizer))
        {
            revert NotPayerOrAuthorizer();
        }
    }

    function _hashTypedData(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));
    }
}
