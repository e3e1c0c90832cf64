// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ISignatureTransfer} from "@uniswap/v4-periphery/lib/permit2/src/interfaces/ISignatureTransfer.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";

/// @title x402 `exact` Permit2 proxy
/// @notice Settles an x402 `exact` payment: moves exactly the signed amount from the payer straight
/// to the recipient bound in the payer's signed witness.
/// @dev Spec: x402 `exact` scheme on EVM, asset transfer method `permit2`. Anyone may call: the
/// signature fixes token, amount, recipient and time window, so the caller only chooses when to
/// broadcast. Built for placement with `anvil_setCode`: no constructor, no immutables, and the only
/// state is transient.
contract x402ExactPermit2Proxy {
    /// @notice The canonical Permit2 deployment, the same on every EVM chain.
    ISignatureTransfer public constant PERMIT2 = ISignatureTransfer(0x000000000022D473030F116dDEE9F6B43aC78BA3);

    /// @notice The witness part of the EIP-712 type that Permit2 appends to `PermitWitnessTransferFrom(...,`.
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";

    /// @notice EIP-712 type hash of {Witness}.
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");

    /// @notice What the payer binds into the Permit2 signature besides token, amount, nonce and deadline.
    struct Witness {
        address to;
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

    /// @notice The signed amount is zero.
    error InvalidAmount();
    /// @notice The witness names no recipient.
    error InvalidDestination();
    /// @notice No payer was given.
    error InvalidOwner();
    /// @notice Nothing is deployed at the Permit2 address on this chain.
    error InvalidPermit2Address();
    /// @notice The block time is before the witness's `validAfter`.
    error PaymentTooEarly();
    /// @notice The EIP-2612 approval is not for exactly the Permit2 amount.
    error Permit2612AmountMismatch();
    /// @notice A settlement was entered while another one was running.
    error ReentrancyGuardReentrantCall();

    // Transient, so the guard needs no constructor and costs no storage write.
    bool private transient _entered;

    modifier nonReentrant() {
        if (_entered) revert ReentrancyGuardReentrantCall();
        _entered = true;
        _;
        _entered = false;
    }

    /// @notice Moves exactly `permit.permitted.amount` from `owner` to `witness.to`.
    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _checkSettlement(permit, owner, witness);
        _transfer(permit, owner, witness, signature);
        emit Settled();
    }

    /// @notice Submits the payer's EIP-2612 approval of Permit2, then settles as {settle} does.
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _checkSettlement(permit, owner, witness);
        if (permit2612.value != permit.permitted.amount) revert Permit2612AmountMismatch();
        // A failed permit is tolerated on purpose: anyone may submit the same EIP-2612 signature first
        // (or the approval may already stand), and then the Permit2 transfer below still succeeds;
        // without an approval that transfer reverts, so nothing is lost by tolerating a failure here.
        try IERC20Permit(permit.permitted.token).permit(
            owner, address(PERMIT2), permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
        ) {} catch {}
        _transfer(permit, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _checkSettlement(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness
    ) private view {
        // A zero payment would only burn the payer's nonce.
        if (permit.permitted.amount == 0) revert InvalidAmount();
        if (owner == address(0)) revert InvalidOwner();
        if (witness.to == address(0)) revert InvalidDestination();
        // Permit2 enforces the upper bound (`deadline`) and the one-time nonce itself.
        if (block.timestamp < witness.validAfter) revert PaymentTooEarly();
        // Names the likeliest chain misconfiguration instead of a revert without data.
        if (address(PERMIT2).code.length == 0) revert InvalidPermit2Address();
    }

    function _transfer(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        bytes32 witnessHash = keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.validAfter));
        PERMIT2.permitWitnessTransferFrom(
            permit,
            ISignatureTransfer.SignatureTransferDetails({to: witness.to, requestedAmount: permit.permitted.amount}),
            owner,
            witnessHash,
            WITNESS_TYPE_STRING,
            signature
        );
    }
}
