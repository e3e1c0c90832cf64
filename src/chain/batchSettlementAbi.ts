const channelConfig = {
  name: "config",
  type: "tuple",
  components: [
    { name: "payer", type: "address" },
    { name: "payerAuthorizer", type: "address" },
    { name: "receiver", type: "address" },
    { name: "receiverAuthorizer", type: "address" },
    { name: "token", type: "address" },
    { name: "withdrawDelay", type: "uint40" },
    { name: "salt", type: "bytes32" },
  ],
} as const;

/**
 * What Tollgate reads and calls on the x402 batch-settlement contract: a channel's balance and
 * claims, its pending withdrawal, its refund nonce, a receiver's claimed and settled totals, and
 * the two steps of a payer's withdrawal without the seller.
 * @see https://github.com/x402-foundation/x402/blob/main/specs/schemes/batch-settlement/scheme_batch_settlement_evm.md
 */
export const batchSettlementAbi = [
  {
    type: "function",
    name: "channels",
    stateMutability: "view",
    inputs: [{ name: "channelId", type: "bytes32" }],
    outputs: [
      { name: "balance", type: "uint128" },
      { name: "totalClaimed", type: "uint128" },
    ],
  },
  {
    type: "function",
    name: "pendingWithdrawals",
    stateMutability: "view",
    inputs: [{ name: "channelId", type: "bytes32" }],
    outputs: [
      { name: "amount", type: "uint128" },
      { name: "initiatedAt", type: "uint40" },
    ],
  },
  {
    type: "function",
    name: "refundNonce",
    stateMutability: "view",
    inputs: [{ name: "channelId", type: "bytes32" }],
    outputs: [{ name: "", type: "uint256" }],
  },
  {
    type: "function",
    name: "receivers",
    stateMutability: "view",
    inputs: [
      { name: "receiver", type: "address" },
      { name: "token", type: "address" },
    ],
    outputs: [
      { name: "totalClaimed", type: "uint128" },
      { name: "totalSettled", type: "uint128" },
    ],
  },
  {
    type: "function",
    name: "initiateWithdraw",
    stateMutability: "nonpayable",
    inputs: [channelConfig, { name: "amount", type: "uint128" }],
    outputs: [],
  },
  {
    type: "function",
    name: "finalizeWithdraw",
    stateMutability: "nonpayable",
    inputs: [channelConfig],
    outputs: [],
  },
  {
    type: "event",
    name: "Claimed",
    inputs: [
      { name: "channelId", type: "bytes32", indexed: true },
      { name: "amount", type: "uint128", indexed: false },
      { name: "totalClaimed", type: "uint128", indexed: false },
    ],
  },
] as const;
