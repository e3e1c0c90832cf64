/** EIP-2612's `nonces(owner)`: the next permit nonce of an owner, and whether a token has permits at all. */
export const eip2612NoncesAbi = [
  {
    type: "function",
    name: "nonces",
    inputs: [{ name: "owner", type: "address" }],
    outputs: [{ name: "", type: "uint256" }],
    stateMutability: "view",
  },
] as const;
