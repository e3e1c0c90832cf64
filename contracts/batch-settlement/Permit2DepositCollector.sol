// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ISignatureTransfer} from "@uniswap/v4-periphery/lib/permit2/src/interfaces/ISignatureTransfer.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {IDepositCollector} from "./IBatchSettlement.sol";

/// @title x402 batch-settlement Permit2 deposit collector
/// @notice Pulls a deposit through Permit2's `permitWitnessTransferFrom` (spender: this collector)
/// straight into the batch settlement contract; the witness `DepositWitness(bytes32 channelId)`
/// binds the signature to one channel. Works for any ERC-20 the payer approved to Permit2.
/// @dev `collectorData` is `abi.encode(uint256 nonce, uint256 deadline, bytes signature, bytes eip2612Permit)`;
/// a non-empty `eip2612Permit` is `abi.encode(uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)`
/// approving Permit2 first (gas-sponsored onboarding). No constructor, no immutables.
contract Permit2DepositCollector is IDepositCollector {
    /// @notice The canonical Permit2 deployment.
    ISignatureTransfer public constant PERMIT2 = ISignatureTransfer(0x000000000022D473030F116dDEE9F6B43aC78BA3);
    /// @notice The canonical x402 batch settlement contract.
    address public constant BATCH_SETTLEMENT = 0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003;

    /// @notice The witness part Permit2 appends to `PermitWitnessTransferFrom(...,`.
    string public constant WITNESS_TYPE_STRING =
        "DepositWitness witness)DepositWitness(bytes32 channelId)TokenPermissions(address token,uint256 amount)";
    bytes32 public constant DEPOSIT_WITNESS_TYPEHASH = keccak256("DepositWitness(bytes32 channelId)");

    error OnlyBatchSettlement();

    /// @inheritdoc IDepositCollector
    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data) external {
        if (msg.sender != BATCH_SETTLEMENT) revert OnlyBatchSettlement();
        (uint256 nonce, uint256 deadline, bytes memory signature, bytes memory eip2612Permit) =
            abi.decode(data, (uint256, uint256, bytes, bytes));
        if (eip2612Permit.length != 0) _approvePermit2(payer, token, eip2612Permit);
        PERMIT2.permitWitnessTransferFrom(
            ISignatureTransfer.PermitTransferFrom({
                permitted: ISignatureTransfer.TokenPermissions({token: token, amount: amount}),
                nonce: nonce,
                deadline: deadline
            }),
            ISignatureTransfer.SignatureTransferDetails({to: BATCH_SETTLEMENT, requestedAmount: amount}),
            payer,
            keccak256(abi.encode(DEPOSIT_WITNESS_TYPEHASH, channelId)),
            WITNESS_TYPE_STRING,
            signature
        );
    }

    /// @dev A failed permit is ignored: it may have been used already (front-run), and Permit2
    /// then fails on its own if the allowance is really missing.
    function _approvePermit2(address payer, address token, bytes memory eip2612Permit) private {
        (uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) =
            abi.decode(eip2612Permit, (uint256, uint256, uint8, bytes32, bytes32));
        try IERC20Permit(token).permit(payer, address(PERMIT2), value, deadline, v, r, s) {} catch {}
    }
}
