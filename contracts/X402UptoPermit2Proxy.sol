// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ISignatureTransfer} from "@uniswap/v4-periphery/lib/permit2/src/interfaces/ISignatureTransfer.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

/// @title x402 `upto` Permit2 proxy
/// @notice Settles an x402 `upto` payment: the facilitator named in the payer's signed witness
/// moves any amount up to the signed maximum straight from the payer to the witness's recipient.
/// @dev Spec: x402 `upto` scheme on EVM (Permit2 witness transfer). Built for placement with
/// `anvil_setCode`: no constructor, no immutables, and the only state is transient, so the
/// runtime code works on zeroed storage at the canonical proxy address.
contract x402UptoPermit2Proxy {
    /// @notice The canonical Permit2 deployment, the same on every EVM chain.
    ISignatureTransfer public constant PERMIT2 = ISignatureTransfer(0x000000000022D473030F116dDEE9F6B43aC78BA3);

    /// @notice The witness part of the EIP-712 type that Permit2 appends to `PermitWitnessTransferFrom(...,`.
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";

    /// @notice EIP-712 type hash of {Witness}.
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");

    /// @notice What the payer binds into the Permit2 signature besides token, maximum, nonce and deadline.
    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    /// @notice An EIP-2612 approval of Permit2, signed by the payer, for gas-sponsored onboarding.
    struct EIP2612Permit {
        uint256 value;
        uint256 deadline;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    /// @notice Emitted after a successful {settle}.
    event Settled();

    /// @notice Emitted after a successful {settleWithPermit}.
    event SettledWithPermit();

    /// @notice The settled amount is above the signed maximum.
    error AmountExceedsPermitted();
    /// @notice The witness names no recipient.
    error InvalidDestination();
    /// @notice No payer was given.
    error InvalidOwner();
    /// @notice Nothing is deployed at the Permit2 address on this chain.
    error InvalidPermit2Address();
    /// @notice The block time is before the witness's `validAfter`.
    error PaymentTooEarly();
    /// @notice The EIP-2612 approval is not for exactly the Permit2 maximum.
    error Permit2612AmountMismatch();
    /// @notice A settlement was entered while another one was running.
    error ReentrancyGuardReentrantCall();
    /// @notice The caller is not the facilitator the payer named in the witness.
    error UnauthorizedFacilitator();

    // Transient, so the guard needs no constructor and costs no storage write.
    bool private transient _entered;

    modifier nonReentrant() {
        if (_entered) revert ReentrancyGuardReentrantCall();
        _entered = true;
        _;
        _entered = false;
    }

    /// @notice Moves `amount` (at most the signed maximum) from `owner` to `witness.to`; only `witness.facilitator` may call.
    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _checkSettlement(permit, amount, owner, witness);
        _transfer(permit, amount, owner, witness, signature);
        emit Settled();
    }

    /// @notice Submits the payer's EIP-2612 approval of Permit2, then settles as {settle} does.
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _checkSettlement(permit, amount, owner, witness);
        if (permit2612.value != permit.permitted.amount) revert Permit2612AmountMismatch();
        // A failed permit is tolerated on purpose: anyone may submit the same EIP-2612 signature first
        // (or the approval may already stand), and then the Permit2 transfer below still succeeds;
        // without an approval that transfer reverts, so nothing is lost by tolerating a failure here.
        try IERC20Permit(permit.permitted.token).permit(
            owner, address(PERMIT2), permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
        ) {} catch {}
        _transfer(permit, amount, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _checkSettlement(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness
    ) private view {
        // The facilitator is signed into the witness, so only it can choose the final amount.
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
        // A zero amount is allowed: it closes the authorization (Permit2 spends the nonce) without
        // moving funds, and the @x402/evm upto ABI carries no InvalidAmount error.
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        if (owner == address(0)) revert InvalidOwner();
        if (witness.to == address(0)) revert InvalidDestination();
        // Permit2 enforces the upper bound (`deadline`) and the one-time nonce itself.
        if (block.timestamp < witness.validAfter) revert PaymentTooEarly();
        // Names the likeliest chain misconfiguration instead of a revert without data.
        if (address(PERMIT2).code.length == 0) revert InvalidPermit2Address();
    }

    function _transfer(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.facilitator, witness.validAfter));
        PERMIT2.permitWitnessTransferFrom(
            permit,
            ISignatureTransfer.SignatureTransferDetails({to: witness.to, requestedAmount: amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
    }
}
