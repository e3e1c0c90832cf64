// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Hostile channel test token
/// @notice Test-only ERC-20 whose `transfer` and `transferFrom`, once armed, first replay a call
/// they were given (meant to re-enter the batch settlement contract) and record how it ended.
/// @dev Anyone may mint or arm it; it exists to prove the settlement's reentrancy guard.
contract HostileChannelToken is ERC20 {
    address private _reentryTarget;
    bytes private _reentryCall;

    bool public reentryAttempted;
    bool public reentryReverted;
    bytes public reentryResult;

    constructor() ERC20("Hostile Channel Token", "HOSTILE2") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Makes the next transfer call `target` with `callData` before moving tokens.
    function arm(address target, bytes calldata callData) external {
        _reentryTarget = target;
        _reentryCall = callData;
        reentryAttempted = false;
        reentryReverted = false;
        delete reentryResult;
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        _reenter();
        return super.transfer(to, value);
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        _reenter();
        return super.transferFrom(from, to, value);
    }

    function _reenter() private {
        address target = _reentryTarget;
        if (target == address(0)) return;
        // Disarm first so that a re-entry that got through could not loop.
        _reentryTarget = address(0);
        (bool success, bytes memory result) = target.call(_reentryCall);
        reentryAttempted = true;
        reentryReverted = !success;
        reentryResult = result;
    }
}
