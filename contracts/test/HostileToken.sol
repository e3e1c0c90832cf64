// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Hostile test token
/// @notice Test-only ERC-20 whose `transferFrom`, once armed, first replays a call it was given
/// (meant to re-enter a settlement proxy) and records how that call ended.
/// @dev Anyone may mint or arm it; it exists to prove the proxies' reentrancy guards. Deployed normally.
contract HostileToken is ERC20 {
    address private _reentryTarget;
    bytes private _reentryCall;

    /// @notice Whether an armed re-entry was attempted.
    bool public reentryAttempted;
    /// @notice Whether the attempted re-entry reverted.
    bool public reentryReverted;
    /// @notice The re-entry's return or revert data.
    bytes public reentryResult;

    constructor() ERC20("Hostile Token", "HOSTILE") {}

    /// @notice Creates `amount` tokens for `to`; open to anyone.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Makes the next `transferFrom` call `target` with `callData` before moving tokens.
    function arm(address target, bytes calldata callData) external {
        _reentryTarget = target;
        _reentryCall = callData;
        reentryAttempted = false;
        reentryReverted = false;
        delete reentryResult;
    }

    /// @notice ERC-20 `transferFrom`, preceded by the armed re-entry attempt if there is one.
    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        address target = _reentryTarget;
        if (target != address(0)) {
            // Disarm first so that a re-entry that got through could not loop.
            _reentryTarget = address(0);
            (bool success, bytes memory result) = target.call(_reentryCall);
            reentryAttempted = true;
            reentryReverted = !success;
            reentryResult = result;
        }
        return super.transferFrom(from, to, value);
    }
}
