// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Plain test dollar for the local devnet
/// @notice A 6-decimal ERC-20 WITHOUT EIP-2612 `permit` (and without EIP-3009): the kind of token whose
/// Permit2 approval can only be an `approve` transaction, which the `erc20ApprovalGasSponsoring`
/// extension lets a facilitator relay for a buyer that holds no gas.
contract PlainTestToken is ERC20 {
    /// @notice The only account allowed to mint: the deployer.
    address public immutable minter;

    constructor() ERC20("Plain Test Dollar", "PTD") {
        minter = msg.sender;
    }

    /// @notice 6 decimals, like USDC.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Creates `amount` new coins for `to`; only the deployer may mint.
    function mint(address to, uint256 amount) external {
        require(msg.sender == minter, "PlainTestToken: caller is not the minter");
        _mint(to, amount);
    }
}
