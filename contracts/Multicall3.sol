// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Multicall3-compatible batcher for the local devnet
/// @notice Batches read calls the way the canonical Multicall3 does, for the subset of its interface
/// that viem (`aggregate3`) and the x402 EVM facilitator (`tryAggregate`) use.
/// @dev Placed with `anvil_setCode` at 0xcA11bde05977b3631167028862bE2a173976CA11: no constructor,
/// no immutables, no storage.
contract Multicall3 {
    /// @notice A call for {tryAggregate}.
    struct Call {
        address target;
        bytes callData;
    }

    /// @notice A call for {aggregate3}, with its own failure tolerance.
    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    /// @notice The outcome of one call: whether it succeeded, and its return or revert data.
    struct Result {
        bool success;
        bytes returnData;
    }

    /// @notice Runs every call; reverts on the first failure only when `requireSuccess` is set.
    function tryAggregate(bool requireSuccess, Call[] calldata calls)
        external
        payable
        returns (Result[] memory returnData)
    {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool success, bytes memory data) = calls[i].target.call(calls[i].callData);
            if (requireSuccess && !success) revert("Multicall3: call failed");
            returnData[i] = Result(success, data);
        }
    }

    /// @notice Runs every call; reverts when a call that does not allow failure fails.
    function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool success, bytes memory data) = calls[i].target.call(calls[i].callData);
            if (!calls[i].allowFailure && !success) revert("Multicall3: call failed");
            returnData[i] = Result(success, data);
        }
    }

    /// @notice The current block number.
    function getBlockNumber() external view returns (uint256 blockNumber) {
        blockNumber = block.number;
    }

    /// @notice The current block's timestamp.
    function getCurrentBlockTimestamp() external view returns (uint256 timestamp) {
        timestamp = block.timestamp;
    }

    /// @notice The ether balance of `addr`.
    function getEthBalance(address addr) external view returns (uint256 balance) {
        balance = addr.balance;
    }
}
