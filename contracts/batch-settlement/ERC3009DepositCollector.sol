// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IDepositCollector} from "./IBatchSettlement.sol";

/// @notice The EIP-3009 entry point the collector uses (USDC v2.2's `bytes signature` form).
interface IERC3009Receive {
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;
}

/// @title x402 batch-settlement ERC-3009 deposit collector
/// @notice Pulls a deposit with the payer's EIP-3009 `ReceiveWithAuthorization` (payee: this
/// collector) and forwards it to the batch settlement contract. The authorization's nonce is
/// `keccak256(abi.encode(channelId, salt))`, so a signature funds exactly one channel.
/// @dev `collectorData` is `abi.encode(uint256 validAfter, uint256 validBefore, uint256 salt, bytes signature)`.
/// Only the batch settlement contract may call it: `receiveWithAuthorization` requires the payee
/// as caller, so no one else can spend the payer's authorization. No constructor, no immutables.
contract ERC3009DepositCollector is IDepositCollector {
    using SafeERC20 for IERC20;

    /// @notice The canonical x402 batch settlement contract.
    address public constant BATCH_SETTLEMENT = 0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003;

    error OnlyBatchSettlement();

    /// @inheritdoc IDepositCollector
    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data) external {
        if (msg.sender != BATCH_SETTLEMENT) revert OnlyBatchSettlement();
        (uint256 validAfter, uint256 validBefore, uint256 salt, bytes memory signature) =
            abi.decode(data, (uint256, uint256, uint256, bytes));
        bytes32 nonce = keccak256(abi.encode(channelId, salt));
        IERC3009Receive(token).receiveWithAuthorization(
            payer, address(this), amount, validAfter, validBefore, nonce, signature
        );
        IERC20(token).safeTransfer(BATCH_SETTLEMENT, amount);
    }
}
