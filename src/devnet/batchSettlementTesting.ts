// Test helpers for the batch-settlement contract tests: a devnet, typed calls and the
// signatures a payer and a receiver authorizer make (EIP-712 types as @x402/evm defines them).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BATCH_SETTLEMENT_DOMAIN,
  claimBatchTypes,
  PERMIT2_ADDRESS,
  refundTypes,
  voucherTypes,
} from "@x402/evm";
import { computeChannelId } from "@x402/evm/batch-settlement/client";
import {
  type Abi,
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createTestClient,
  createWalletClient,
  encodeAbiParameters,
  erc20Abi,
  type Hex,
  http,
  keccak256,
  type TransactionReceipt,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import type { DevnetArtifacts } from "./artifacts.js";
import { compileContracts } from "./compileContracts.js";
import type { KeyedAccount } from "./devAccounts.js";
import { type Devnet, startDevnet } from "./startDevnet.js";

export type ChannelConfig = {
  payer: Address;
  payerAuthorizer: Address;
  receiver: Address;
  receiverAuthorizer: Address;
  token: Address;
  withdrawDelay: number;
  salt: Hex;
};

export type VoucherClaim = {
  voucher: { channel: ChannelConfig; maxClaimableAmount: bigint };
  signature: Hex;
  totalClaimed: bigint;
};

type ContractCall = { address: Address; abi: Abi; functionName: string; args: readonly unknown[] };

const random32 = (): Hex => `0x${randomBytes(32).toString("hex")}`;

/** A fresh key with test ETH. */
export const freshAccount = (): KeyedAccount => {
  const privateKey = generatePrivateKey();
  return { address: privateKeyToAccount(privateKey).address, privateKey };
};

const receiveWithAuthorizationTypes = {
  ReceiveWithAuthorization: [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ],
} as const;

const depositPermit2Types = {
  PermitWitnessTransferFrom: [
    { name: "permitted", type: "TokenPermissions" },
    { name: "spender", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
    { name: "witness", type: "DepositWitness" },
  ],
  TokenPermissions: [
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
  ],
  DepositWitness: [{ name: "channelId", type: "bytes32" }],
} as const;

/** Starts a devnet and returns it with clients and helpers bound to it. */
export async function startChannelDevnet() {
  // A cache of its own: the shared default would be rewritten by every worktree's source set.
  const artifacts: DevnetArtifacts = await compileContracts({
    cacheDir: join(tmpdir(), "tollgate-contracts-batch-settlement"),
  });
  const devnet: Devnet = await startDevnet({ buyers: 1, artifacts });
  const transport = http(devnet.rpcUrl);
  const publicClient = createPublicClient({ chain: anvil, transport, pollingInterval: 20 });
  const testClient = createTestClient({ chain: anvil, mode: "anvil", transport });
  const wallet = (account: KeyedAccount) =>
    createWalletClient({ account: privateKeyToAccount(account.privateKey), chain: anvil, transport });
  const settlement = devnet.contracts.batchSettlement;
  const abi = [
    ...artifacts.X402BatchSettlement.abi,
    ...artifacts.Permit2.abi.filter((item) => item.type === "error"),
  ] as Abi;
  const domain = { ...BATCH_SETTLEMENT_DOMAIN, chainId: devnet.chainId, verifyingContract: settlement };
  const sign = (account: KeyedAccount) => privateKeyToAccount(account.privateKey);

  const send = async (from: KeyedAccount, call: ContractCall): Promise<TransactionReceipt> => {
    const hash = await wallet(from).writeContract(call);
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, "success", `${call.functionName} reverted`);
    return receipt;
  };
  const call = (functionName: string, args: readonly unknown[]): ContractCall => ({
    address: settlement,
    abi,
    functionName,
    args,
  });
  /** The custom error name `functionName(args)` from `from` reverts with. */
  const revertOf = async (from: Address, functionName: string, args: readonly unknown[]) => {
    try {
      await publicClient.simulateContract({ account: from, ...call(functionName, args) });
    } catch (error) {
      const reverted =
        error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError);
      if (reverted instanceof ContractFunctionRevertedError) {
        return reverted.data?.errorName === "Error"
          ? String(reverted.data.args?.[0])
          : (reverted.data?.errorName ?? "");
      }
      throw error;
    }
    throw new assert.AssertionError({ message: `${functionName} did not revert` });
  };
  const read = <T>(functionName: string, args: readonly unknown[]) =>
    publicClient.readContract({ address: settlement, abi, functionName, args }) as Promise<T>;
  const balanceOf = (token: Address, owner: Address) =>
    publicClient.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

  /** A funded payer (test ETH, USDC, Permit2 approved) and a channel config for it. */
  const newChannel = async (overrides: Partial<ChannelConfig> & { usdcAtomic?: bigint } = {}) => {
    const payer = await devnet.createBuyer(overrides.usdcAtomic ?? 1_000_000_000n);
    const config: ChannelConfig = {
      payer: payer.address,
      payerAuthorizer: payer.address,
      receiver: devnet.accounts.payTo.address,
      receiverAuthorizer: devnet.accounts.facilitator.address,
      token: devnet.contracts.usdc,
      withdrawDelay: 900,
      salt: random32(),
      ...overrides,
    };
    return { payer, config, channelId: computeChannelId(config, devnet.chainId) as Hex };
  };

  const signVoucher = (signer: KeyedAccount, channelId: Hex, maxClaimableAmount: bigint) =>
    sign(signer).signTypedData({
      domain,
      types: voucherTypes,
      primaryType: "Voucher",
      message: { channelId, maxClaimableAmount },
    });

  const voucherClaim = async (
    signer: KeyedAccount,
    config: ChannelConfig,
    maxClaimableAmount: bigint,
    totalClaimed: bigint,
  ): Promise<VoucherClaim> => {
    const channelId = computeChannelId(config, devnet.chainId) as Hex;
    return {
      voucher: { channel: config, maxClaimableAmount },
      signature: await signVoucher(signer, channelId, maxClaimableAmount),
      totalClaimed,
    };
  };

  const signClaimBatch = (authorizer: KeyedAccount, claims: VoucherClaim[]) =>
    sign(authorizer).signTypedData({
      domain,
      types: claimBatchTypes,
      primaryType: "ClaimBatch",
      message: {
        claims: claims.map((c) => ({
          channelId: computeChannelId(c.voucher.channel, devnet.chainId) as Hex,
          maxClaimableAmount: c.voucher.maxClaimableAmount,
          totalClaimed: c.totalClaimed,
        })),
      },
    });

  const signRefund = (authorizer: KeyedAccount, channelId: Hex, nonce: bigint, amount: bigint) =>
    sign(authorizer).signTypedData({
      domain,
      types: refundTypes,
      primaryType: "Refund",
      message: { channelId, nonce, amount },
    });

  /** `deposit` arguments for an ERC-3009 deposit the payer signed. */
  const erc3009Deposit = (payer: KeyedAccount, config: ChannelConfig, amount: bigint) =>
    erc3009DepositArgs(devnet, payer, config, amount);

  /** `deposit` arguments for a Permit2 deposit the payer signed (witness: the channel id). */
  const permit2Deposit = async (
    payer: KeyedAccount,
    config: ChannelConfig,
    amount: bigint,
    witnessChannelId?: Hex,
  ) => {
    const channelId = witnessChannelId ?? (computeChannelId(config, devnet.chainId) as Hex);
    const nonce = BigInt(random32());
    const deadline = BigInt(Math.floor(Date.now() / 1000) + 3600);
    const signature = await sign(payer).signTypedData({
      domain: { name: "Permit2", chainId: devnet.chainId, verifyingContract: PERMIT2_ADDRESS },
      types: depositPermit2Types,
      primaryType: "PermitWitnessTransferFrom",
      message: {
        permitted: { token: config.token, amount },
        spender: devnet.contracts.permit2DepositCollector,
        nonce,
        deadline,
        witness: { channelId },
      },
    });
    const collectorData = encodeAbiParameters(
      [{ type: "uint256" }, { type: "uint256" }, { type: "bytes" }, { type: "bytes" }],
      [nonce, deadline, signature, "0x"],
    );
    return [config, amount, devnet.contracts.permit2DepositCollector, collectorData] as const;
  };

  const channelOf = async (channelId: Hex) => {
    const [balance, totalClaimed] = await read<[bigint, bigint]>("channels", [channelId]);
    return { balance, totalClaimed };
  };

  return {
    devnet,
    artifacts,
    abi,
    publicClient,
    testClient,
    wallet,
    settlement,
    relayer: devnet.accounts.facilitator,
    authorizer: devnet.accounts.facilitator,
    send,
    call,
    revertOf,
    read,
    balanceOf,
    newChannel,
    signVoucher,
    voucherClaim,
    signClaimBatch,
    signRefund,
    erc3009Deposit,
    permit2Deposit,
    channelOf,
  };
}

/** `deposit` arguments for an ERC-3009 deposit of `amount` test USDC that `payer` signed into `config`'s channel. */
export async function erc3009DepositArgs(
  devnet: Pick<Devnet, "chainId" | "contracts">,
  payer: KeyedAccount,
  config: ChannelConfig,
  amount: bigint,
) {
  const channelId = computeChannelId(config, devnet.chainId) as Hex;
  const salt = BigInt(random32());
  const validBefore = BigInt(Math.floor(Date.now() / 1000) + 3600);
  const nonce = keccak256(encodeAbiParameters([{ type: "bytes32" }, { type: "uint256" }], [channelId, salt]));
  const signature = await privateKeyToAccount(payer.privateKey).signTypedData({
    domain: { name: "USD Coin", version: "2", chainId: devnet.chainId, verifyingContract: config.token },
    types: receiveWithAuthorizationTypes,
    primaryType: "ReceiveWithAuthorization",
    message: {
      from: payer.address,
      to: devnet.contracts.erc3009DepositCollector,
      value: amount,
      validAfter: 0n,
      validBefore,
      nonce,
    },
  });
  const collectorData = encodeAbiParameters(
    [{ type: "uint256" }, { type: "uint256" }, { type: "uint256" }, { type: "bytes" }],
    [0n, validBefore, salt, signature],
  );
  return [config, amount, devnet.contracts.erc3009DepositCollector, collectorData] as const;
}

export type ChannelDevnet = Awaited<ReturnType<typeof startChannelDevnet>>;
