import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  authorizationTypes,
  PERMIT2_ADDRESS,
  permit2WitnessTypes,
  uptoPermit2WitnessTypes,
  x402ExactPermit2ProxyABI,
  x402ExactPermit2ProxyAddress,
  x402UptoPermit2ProxyABI,
  x402UptoPermit2ProxyAddress,
} from "@x402/evm";
import {
  type Abi,
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createTestClient,
  createWalletClient,
  domainSeparator,
  encodeAbiParameters,
  encodeFunctionData,
  erc20Abi,
  type Hex,
  http,
  keccak256,
  maxUint256,
  parseEther,
  parseEventLogs,
  parseSignature,
  stringToHex,
  toFunctionSelector,
  zeroAddress,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import type { DevnetArtifacts } from "./artifacts.js";
import { compileContracts } from "./compileContracts.js";
import { devAccount, type KeyedAccount } from "./devAccounts.js";
import { type Devnet, startDevnet } from "./startDevnet.js";

let devnet: Devnet;
let artifacts: DevnetArtifacts;
let chain: ReturnType<typeof devnetClients>;
let uptoAbi: Abi;
let exactAbi: Abi;

function devnetClients(rpcUrl: string) {
  const transport = http(rpcUrl);
  return {
    public: createPublicClient({ chain: anvil, transport }),
    test: createTestClient({ chain: anvil, mode: "anvil", transport }),
    wallet: (account: KeyedAccount) =>
      createWalletClient({ account: privateKeyToAccount(account.privateKey), chain: anvil, transport }),
  };
}

before(async () => {
  artifacts = await compileContracts();
  devnet = await startDevnet({ buyers: 1, artifacts });
  chain = devnetClients(devnet.rpcUrl);
  // Permit2's own errors (InvalidNonce, SignatureExpired, InvalidSigner, …) surface through the proxies.
  const permit2Errors = artifacts.Permit2.abi.filter((item) => item.type === "error");
  uptoAbi = [...x402UptoPermit2ProxyABI, ...permit2Errors];
  exactAbi = [...x402ExactPermit2ProxyABI, ...permit2Errors];
});

after(async () => {
  await devnet?.stop();
});

type ContractCall = { address: Address; abi: Abi; functionName: string; args: readonly unknown[] };

/** Sends `call` from `from`, waits for it and asserts it succeeded. */
async function send(from: KeyedAccount, call: ContractCall) {
  const hash = await chain.wallet(from).writeContract(call);
  const receipt = await chain.public.waitForTransactionReceipt({ hash, pollingInterval: 20 });
  assert.equal(receipt.status, "success");
  return receipt;
}

/** The custom error (or revert string) `call` from `from` reverts with. */
async function revertOf(from: Address, call: ContractCall): Promise<string> {
  try {
    await chain.public.simulateContract({ account: from, ...call });
  } catch (error) {
    const reverted =
      error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError) {
      // Error(string) reverts (e.g. solmate's "TRANSFER_FROM_FAILED") are reported by their message.
      return reverted.data?.errorName === "Error"
        ? String(reverted.data.args?.[0])
        : (reverted.data?.errorName ?? "");
    }
    throw error;
  }
  throw new assert.AssertionError({ message: `${call.functionName} did not revert` });
}

const balanceOf = (token: Address, owner: Address) =>
  chain.public.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

const latestTimestamp = async () => (await chain.public.getBlock()).timestamp;

/** A random 256-bit Permit2 nonce, as the x402 client draws them. */
const randomNonce = () => BigInt(`0x${randomBytes(32).toString("hex")}`);

/** EIP-2612's `Permit` type. */
const eip2612PermitTypes = {
  Permit: [
    { name: "owner", type: "address" },
    { name: "spender", type: "address" },
    { name: "value", type: "uint256" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
} as const;

const permit2Domain = () => ({
  name: "Permit2",
  chainId: devnet.chainId,
  verifyingContract: PERMIT2_ADDRESS,
});

/** A fresh account holding test ETH and `tokenAtomic` of the hostile token, with Permit2 approved. */
async function hostileTokenHolder(token: Address, tokenAtomic: bigint): Promise<KeyedAccount> {
  const privateKey = generatePrivateKey();
  const holder = { address: privateKeyToAccount(privateKey).address, privateKey };
  await chain.test.setBalance({ address: holder.address, value: parseEther("1") });
  const abi = artifacts.HostileToken.abi;
  await send(holder, { address: token, abi, functionName: "mint", args: [holder.address, tokenAtomic] });
  await send(holder, { address: token, abi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] });
  return holder;
}

async function deployHostileToken(): Promise<Address> {
  const hash = await chain.wallet(devnet.accounts.deployer).deployContract({
    abi: artifacts.HostileToken.abi,
    bytecode: artifacts.HostileToken.bytecode,
  });
  const receipt = await chain.public.waitForTransactionReceipt({ hash, pollingInterval: 20 });
  assert.ok(receipt.contractAddress);
  return receipt.contractAddress;
}

/** Reads what the hostile token recorded about its last re-entry attempt. */
async function reentryRecord(token: Address) {
  const read = (functionName: string) =>
    chain.public.readContract({ address: token, abi: artifacts.HostileToken.abi, functionName });
  return {
    attempted: (await read("reentryAttempted")) as boolean,
    reverted: (await read("reentryReverted")) as boolean,
    result: (await read("reentryResult")) as Hex,
  };
}

/** An EIP-2612 approval of Permit2 by `owner`, split as the proxies take it. */
async function signPermit2Approval(owner: KeyedAccount, valueAtomic: bigint) {
  const usdc = devnet.contracts.usdc;
  const nonce = await chain.public.readContract({
    address: usdc,
    abi: artifacts.TestUSDC.abi,
    functionName: "nonces",
    args: [owner.address],
  });
  const deadline = (await latestTimestamp()) + 3600n;
  const signature = await privateKeyToAccount(owner.privateKey).signTypedData({
    domain: { name: "USD Coin", version: "2", chainId: devnet.chainId, verifyingContract: usdc },
    types: eip2612PermitTypes,
    primaryType: "Permit",
    message: {
      owner: owner.address,
      spender: PERMIT2_ADDRESS,
      value: valueAtomic,
      nonce: nonce as bigint,
      deadline,
    },
  });
  const { r, s, v, yParity } = parseSignature(signature);
  return { value: valueAtomic, deadline, r, s, v: Number(v ?? BigInt(yParity + 27)) };
}

/** A buyer with test USDC but no Permit2 approval (and no ETH: the facilitator pays gas). */
async function unapprovedBuyer(usdcAtomic: bigint): Promise<KeyedAccount> {
  const privateKey = generatePrivateKey();
  const buyer = { address: privateKeyToAccount(privateKey).address, privateKey };
  await devnet.mintUsdc(buyer.address, usdcAtomic);
  return buyer;
}

describe("x402UptoPermit2Proxy", () => {
  type UptoAuthorization = {
    owner: KeyedAccount;
    token: Address;
    maxAtomic: bigint;
    nonce: bigint;
    deadline: bigint;
    to: Address;
    facilitator: Address;
    validAfter: bigint;
  };

  /** A signed upto authorization; `settle(amount)` builds the proxy call for any amount. */
  async function signUpto(overrides: Partial<UptoAuthorization> = {}) {
    const authorization: UptoAuthorization = {
      owner: devnet.accounts.buyers[0]!,
      token: devnet.contracts.usdc,
      maxAtomic: 1_000_000n,
      nonce: randomNonce(),
      deadline: (await latestTimestamp()) + 3600n,
      to: devnet.accounts.payTo.address,
      facilitator: devnet.accounts.facilitator.address,
      validAfter: 0n,
      ...overrides,
    };
    const { owner, token, maxAtomic, nonce, deadline, to, facilitator, validAfter } = authorization;
    const signature = await privateKeyToAccount(owner.privateKey).signTypedData({
      domain: permit2Domain(),
      types: uptoPermit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message: {
        permitted: { token, amount: maxAtomic },
        spender: x402UptoPermit2ProxyAddress,
        nonce,
        deadline,
        witness: { to, facilitator, validAfter },
      },
    });
    const args = (amountAtomic: bigint, witness: Partial<{ to: Address; facilitator: Address }> = {}) =>
      [
        { permitted: { token, amount: maxAtomic }, nonce, deadline },
        amountAtomic,
        owner.address,
        { to, facilitator, validAfter, ...witness },
        signature,
      ] as const;
    const settle = (amountAtomic: bigint, witness?: Partial<{ to: Address; facilitator: Address }>) => ({
      address: x402UptoPermit2ProxyAddress,
      abi: uptoAbi,
      functionName: "settle",
      args: args(amountAtomic, witness),
    });
    const settleWithPermit = (
      permit2612: Awaited<ReturnType<typeof signPermit2Approval>>,
      amountAtomic: bigint,
    ) => ({
      address: x402UptoPermit2ProxyAddress,
      abi: uptoAbi,
      functionName: "settleWithPermit",
      args: [permit2612, ...args(amountAtomic)],
    });
    return { authorization, signature, settle, settleWithPermit };
  }

  const facilitator = () => devnet.accounts.facilitator;

  test("settles the actual amount, not the maximum, straight from payer to recipient", async () => {
    const { authorization, settle } = await signUpto({ maxAtomic: 1_000_000n });
    const { usdc } = devnet.contracts;
    const payerBefore = await balanceOf(usdc, authorization.owner.address);
    const payeeBefore = await balanceOf(usdc, authorization.to);
    const receipt = await send(facilitator(), settle(400_000n));
    assert.equal(await balanceOf(usdc, authorization.owner.address), payerBefore - 400_000n);
    assert.equal(await balanceOf(usdc, authorization.to), payeeBefore + 400_000n);
    assert.equal(await balanceOf(usdc, x402UptoPermit2ProxyAddress), 0n, "the proxy keeps nothing");
    assert.equal(
      parseEventLogs({ abi: x402UptoPermit2ProxyABI, logs: receipt.logs, eventName: "Settled" }).length,
      1,
    );
  });

  test("only the facilitator named in the witness may settle", async () => {
    const { settle } = await signUpto();
    const stranger = devAccount(8).address;
    assert.equal(await revertOf(stranger, settle(1n)), "UnauthorizedFacilitator");
    // Claiming to be the named facilitator does not help: the witness is part of the signature.
    assert.equal(await revertOf(stranger, settle(1n, { facilitator: stranger })), "InvalidSigner");
  });

  test("refuses an amount above the signed maximum", async () => {
    const { settle } = await signUpto({ maxAtomic: 1_000n });
    assert.equal(await revertOf(facilitator().address, settle(1_001n)), "AmountExceedsPermitted");
  });

  test("pays only the signed recipient", async () => {
    const { settle } = await signUpto();
    assert.equal(
      await revertOf(facilitator().address, settle(1n, { to: facilitator().address })),
      "InvalidSigner",
    );
    assert.equal(
      await revertOf(facilitator().address, settle(1n, { to: zeroAddress })),
      "InvalidDestination",
    );
  });

  test("refuses a missing owner", async () => {
    const { settle } = await signUpto();
    const call = settle(1n);
    const args = [call.args[0], call.args[1], zeroAddress, call.args[3], call.args[4]];
    assert.equal(await revertOf(facilitator().address, { ...call, args }), "InvalidOwner");
  });

  test("refuses settlement before validAfter", async () => {
    const { settle } = await signUpto({ validAfter: (await latestTimestamp()) + 3600n });
    assert.equal(await revertOf(facilitator().address, settle(1n)), "PaymentTooEarly");
  });

  test("refuses settlement after the deadline", async () => {
    const { settle } = await signUpto({ deadline: (await latestTimestamp()) - 1n });
    assert.equal(await revertOf(facilitator().address, settle(1n)), "SignatureExpired");
  });

  test("settles each authorization once", async () => {
    const { settle } = await signUpto();
    await send(facilitator(), settle(10n));
    assert.equal(await revertOf(facilitator().address, settle(10n)), "InvalidNonce");
  });

  test("settleWithPermit submits the payer's EIP-2612 approval of Permit2, then settles", async () => {
    const buyer = await unapprovedBuyer(2_000_000n);
    const { settle, settleWithPermit } = await signUpto({ owner: buyer, maxAtomic: 1_000_000n });
    assert.equal(await revertOf(facilitator().address, settle(1n)), "TRANSFER_FROM_FAILED");
    const receipt = await send(
      facilitator(),
      settleWithPermit(await signPermit2Approval(buyer, 1_000_000n), 250_000n),
    );
    assert.equal(await balanceOf(devnet.contracts.usdc, buyer.address), 1_750_000n);
    const events = parseEventLogs({
      abi: x402UptoPermit2ProxyABI,
      logs: receipt.logs,
      eventName: "SettledWithPermit",
    });
    assert.equal(events.length, 1);
  });

  test("settleWithPermit refuses an EIP-2612 value other than the Permit2 maximum", async () => {
    const buyer = await unapprovedBuyer(2_000_000n);
    const { settleWithPermit } = await signUpto({ owner: buyer, maxAtomic: 1_000_000n });
    const permit2612 = await signPermit2Approval(buyer, 999_999n);
    assert.equal(
      await revertOf(facilitator().address, settleWithPermit(permit2612, 1n)),
      "Permit2612AmountMismatch",
    );
  });

  test("settleWithPermit still settles when someone submitted the EIP-2612 approval first", async () => {
    const buyer = await unapprovedBuyer(2_000_000n);
    const { settleWithPermit } = await signUpto({ owner: buyer, maxAtomic: 1_000_000n });
    const permit2612 = await signPermit2Approval(buyer, 1_000_000n);
    await send(devAccount(8), {
      address: devnet.contracts.usdc,
      abi: artifacts.TestUSDC.abi,
      functionName: "permit",
      args: [
        buyer.address,
        PERMIT2_ADDRESS,
        permit2612.value,
        permit2612.deadline,
        permit2612.v,
        permit2612.r,
        permit2612.s,
      ],
    });
    await send(facilitator(), settleWithPermit(permit2612, 1_000_000n));
    assert.equal(await balanceOf(devnet.contracts.usdc, buyer.address), 1_000_000n);
  });

  test("a token that re-enters settle during the transfer is stopped by the guard", async () => {
    const token = await deployHostileToken();
    const holder = await hostileTokenHolder(token, 10_000n);
    const outer = await signUpto({ owner: holder, token, maxAtomic: 1_000n });
    // A valid second authorization whose facilitator is the token itself: only the guard can stop it.
    const inner = await signUpto({ owner: holder, token, maxAtomic: 500n, facilitator: token });
    const innerCall = inner.settle(500n);
    const innerData = encodeFunctionData({ abi: uptoAbi, functionName: "settle", args: innerCall.args });
    const hostileAbi = artifacts.HostileToken.abi;
    await send(holder, {
      address: token,
      abi: hostileAbi,
      functionName: "arm",
      args: [x402UptoPermit2ProxyAddress, innerData],
    });

    await send(facilitator(), outer.settle(1_000n));
    const nested = await reentryRecord(token);
    assert.equal(nested.attempted, true);
    assert.equal(nested.reverted, true);
    assert.equal(nested.result, toFunctionSelector("ReentrancyGuardReentrantCall()"));
    assert.equal(await balanceOf(token, holder.address), 9_000n, "only the outer settlement moved funds");

    // The same call outside a settlement goes through, so it was the guard that refused it above.
    await send(holder, {
      address: token,
      abi: hostileAbi,
      functionName: "arm",
      args: [x402UptoPermit2ProxyAddress, innerData],
    });
    await send(holder, {
      address: token,
      abi: hostileAbi,
      functionName: "transferFrom",
      args: [holder.address, holder.address, 0n],
    });
    assert.equal((await reentryRecord(token)).reverted, false);
    assert.equal(await balanceOf(token, holder.address), 8_500n);
  });

  test("one settle costs little more than Permit2's own witness transfer", async (t) => {
    const typeString = `Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)`;
    const witnessTypeHash = keccak256(
      stringToHex("Witness(address to,address facilitator,uint256 validAfter)"),
    );
    const owner = devnet.accounts.buyers[0]!;
    const to = devnet.accounts.payTo.address;
    const direct = async () => {
      // The facilitator as Permit2 spender itself: the same transfer without the proxy.
      const nonce = randomNonce();
      const deadline = (await latestTimestamp()) + 3600n;
      const witness = { to, facilitator: facilitator().address, validAfter: 0n };
      const signature = await privateKeyToAccount(owner.privateKey).signTypedData({
        domain: permit2Domain(),
        types: uptoPermit2WitnessTypes,
        primaryType: "PermitWitnessTransferFrom",
        message: {
          permitted: { token: devnet.contracts.usdc, amount: 1_000_000n },
          spender: facilitator().address,
          nonce,
          deadline,
          witness,
        },
      });
      const witnessHash = keccak256(
        encodeAbiParameters(
          [{ type: "bytes32" }, { type: "address" }, { type: "address" }, { type: "uint256" }],
          [witnessTypeHash, witness.to, witness.facilitator, witness.validAfter],
        ),
      );
      return send(facilitator(), {
        address: PERMIT2_ADDRESS,
        abi: artifacts.Permit2.abi,
        functionName: "permitWitnessTransferFrom",
        args: [
          { permitted: { token: devnet.contracts.usdc, amount: 1_000_000n }, nonce, deadline },
          { to, requestedAmount: 400_000n },
          owner.address,
          witnessHash,
          typeString,
          signature,
        ],
      });
    };
    await direct(); // warms the recipient's balance slot, as in the measured runs
    const baseline = (await direct()).gasUsed;
    const proxied = (await send(facilitator(), (await signUpto({ maxAtomic: 1_000_000n })).settle(400_000n)))
      .gasUsed;
    const overhead = proxied - baseline;
    t.diagnostic(
      `upto settle: ${proxied} gas; Permit2 permitWitnessTransferFrom alone: ${baseline} gas; ` +
        `overhead ${overhead} (${((Number(overhead) / Number(baseline)) * 100).toFixed(1)}%)`,
    );
    assert.ok(overhead * 10n <= baseline, `overhead ${overhead} exceeds 10% of ${baseline}`);
  });
});

describe("x402ExactPermit2Proxy", () => {
  type ExactAuthorization = {
    owner: KeyedAccount;
    token: Address;
    amountAtomic: bigint;
    nonce: bigint;
    deadline: bigint;
    to: Address;
    validAfter: bigint;
  };

  /** A signed exact authorization and the proxy calls that settle it. */
  async function signExact(overrides: Partial<ExactAuthorization> = {}) {
    const authorization: ExactAuthorization = {
      owner: devnet.accounts.buyers[0]!,
      token: devnet.contracts.usdc,
      amountAtomic: 50_000n,
      nonce: randomNonce(),
      deadline: (await latestTimestamp()) + 3600n,
      to: devnet.accounts.payTo.address,
      validAfter: 0n,
      ...overrides,
    };
    const { owner, token, amountAtomic, nonce, deadline, to, validAfter } = authorization;
    const signature = await privateKeyToAccount(owner.privateKey).signTypedData({
      domain: permit2Domain(),
      types: permit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message: {
        permitted: { token, amount: amountAtomic },
        spender: x402ExactPermit2ProxyAddress,
        nonce,
        deadline,
        witness: { to, validAfter },
      },
    });
    const args = (witness: Partial<{ to: Address }> = {}, owned: Address = owner.address) =>
      [
        { permitted: { token, amount: amountAtomic }, nonce, deadline },
        owned,
        { to, validAfter, ...witness },
        signature,
      ] as const;
    const settle = (witness?: Partial<{ to: Address }>, owned?: Address) => ({
      address: x402ExactPermit2ProxyAddress,
      abi: exactAbi,
      functionName: "settle",
      args: args(witness, owned),
    });
    const settleWithPermit = (permit2612: Awaited<ReturnType<typeof signPermit2Approval>>) => ({
      address: x402ExactPermit2ProxyAddress,
      abi: exactAbi,
      functionName: "settleWithPermit",
      args: [permit2612, ...args()],
    });
    return { authorization, settle, settleWithPermit };
  }

  // Exact lets anyone broadcast: the signature fixes amount and recipient.
  const anyone = () => devAccount(8);

  test("settles exactly the signed amount, whoever submits it", async () => {
    const { authorization, settle } = await signExact({ amountAtomic: 50_000n });
    const { usdc } = devnet.contracts;
    const payerBefore = await balanceOf(usdc, authorization.owner.address);
    const payeeBefore = await balanceOf(usdc, authorization.to);
    const receipt = await send(anyone(), settle());
    assert.equal(await balanceOf(usdc, authorization.owner.address), payerBefore - 50_000n);
    assert.equal(await balanceOf(usdc, authorization.to), payeeBefore + 50_000n);
    assert.equal(await balanceOf(usdc, x402ExactPermit2ProxyAddress), 0n, "the proxy keeps nothing");
    assert.equal(
      parseEventLogs({ abi: x402ExactPermit2ProxyABI, logs: receipt.logs, eventName: "Settled" }).length,
      1,
    );
  });

  test("refuses a zero amount", async () => {
    const { settle } = await signExact({ amountAtomic: 0n });
    assert.equal(await revertOf(anyone().address, settle()), "InvalidAmount");
  });

  test("pays only the signed recipient", async () => {
    const { settle } = await signExact();
    assert.equal(await revertOf(anyone().address, settle({ to: anyone().address })), "InvalidSigner");
    assert.equal(await revertOf(anyone().address, settle({ to: zeroAddress })), "InvalidDestination");
  });

  test("refuses a missing owner", async () => {
    const { settle } = await signExact();
    assert.equal(await revertOf(anyone().address, settle({}, zeroAddress)), "InvalidOwner");
  });

  test("refuses settlement outside validAfter and deadline", async () => {
    const now = await latestTimestamp();
    const early = await signExact({ validAfter: now + 3600n });
    assert.equal(await revertOf(anyone().address, early.settle()), "PaymentTooEarly");
    const late = await signExact({ deadline: now - 1n });
    assert.equal(await revertOf(anyone().address, late.settle()), "SignatureExpired");
  });

  test("settles each authorization once", async () => {
    const { settle } = await signExact();
    await send(anyone(), settle());
    assert.equal(await revertOf(anyone().address, settle()), "InvalidNonce");
  });

  test("settleWithPermit approves Permit2 by EIP-2612 and settles; the value must match", async () => {
    const buyer = await unapprovedBuyer(100_000n);
    const { settleWithPermit } = await signExact({ owner: buyer, amountAtomic: 60_000n });
    const mismatched = await signPermit2Approval(buyer, 100_000n);
    assert.equal(await revertOf(anyone().address, settleWithPermit(mismatched)), "Permit2612AmountMismatch");
    const receipt = await send(anyone(), settleWithPermit(await signPermit2Approval(buyer, 60_000n)));
    assert.equal(await balanceOf(devnet.contracts.usdc, buyer.address), 40_000n);
    const events = parseEventLogs({
      abi: x402ExactPermit2ProxyABI,
      logs: receipt.logs,
      eventName: "SettledWithPermit",
    });
    assert.equal(events.length, 1);
  });

  test("a token that re-enters settle during the transfer is stopped by the guard", async () => {
    const token = await deployHostileToken();
    const holder = await hostileTokenHolder(token, 10_000n);
    const outer = await signExact({ owner: holder, token, amountAtomic: 1_000n });
    const inner = await signExact({ owner: holder, token, amountAtomic: 500n });
    const innerData = encodeFunctionData({
      abi: exactAbi,
      functionName: "settle",
      args: inner.settle().args,
    });
    const hostileAbi = artifacts.HostileToken.abi;
    await send(holder, {
      address: token,
      abi: hostileAbi,
      functionName: "arm",
      args: [x402ExactPermit2ProxyAddress, innerData],
    });

    await send(anyone(), outer.settle());
    const nested = await reentryRecord(token);
    assert.equal(nested.attempted, true);
    assert.equal(nested.reverted, true);
    assert.equal(nested.result, toFunctionSelector("ReentrancyGuardReentrantCall()"));
    assert.equal(await balanceOf(token, holder.address), 9_000n, "only the outer settlement moved funds");
  });

  test("one settle costs little more than Permit2's own witness transfer", async (t) => {
    const typeString =
      "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";
    const witnessTypeHash = keccak256(stringToHex("Witness(address to,uint256 validAfter)"));
    const owner = devnet.accounts.buyers[0]!;
    const spender = anyone();
    const to = devnet.accounts.payTo.address;
    const direct = async () => {
      const nonce = randomNonce();
      const deadline = (await latestTimestamp()) + 3600n;
      const signature = await privateKeyToAccount(owner.privateKey).signTypedData({
        domain: permit2Domain(),
        types: permit2WitnessTypes,
        primaryType: "PermitWitnessTransferFrom",
        message: {
          permitted: { token: devnet.contracts.usdc, amount: 50_000n },
          spender: spender.address,
          nonce,
          deadline,
          witness: { to, validAfter: 0n },
        },
      });
      const witnessHash = keccak256(
        encodeAbiParameters(
          [{ type: "bytes32" }, { type: "address" }, { type: "uint256" }],
          [witnessTypeHash, to, 0n],
        ),
      );
      return send(spender, {
        address: PERMIT2_ADDRESS,
        abi: artifacts.Permit2.abi,
        functionName: "permitWitnessTransferFrom",
        args: [
          { permitted: { token: devnet.contracts.usdc, amount: 50_000n }, nonce, deadline },
          { to, requestedAmount: 50_000n },
          owner.address,
          witnessHash,
          typeString,
          signature,
        ],
      });
    };
    await direct();
    const baseline = (await direct()).gasUsed;
    const proxied = (await send(spender, (await signExact({ amountAtomic: 50_000n })).settle())).gasUsed;
    const overhead = proxied - baseline;
    t.diagnostic(
      `exact settle: ${proxied} gas; Permit2 permitWitnessTransferFrom alone: ${baseline} gas; ` +
        `overhead ${overhead} (${((Number(overhead) / Number(baseline)) * 100).toFixed(1)}%)`,
    );
    assert.ok(overhead * 10n <= baseline, `overhead ${overhead} exceeds 10% of ${baseline}`);
  });
});

describe("TestUSDC", () => {
  const usdcCall = (functionName: string, args: readonly unknown[]) => ({
    address: devnet.contracts.usdc,
    abi: artifacts.TestUSDC.abi,
    functionName,
    args,
  });
  const read = (functionName: string, args: readonly unknown[] = []) =>
    chain.public.readContract(usdcCall(functionName, args));

  /** An EIP-3009 authorization of `kind` signed by `from`. */
  async function signAuthorization(
    kind: "TransferWithAuthorization" | "ReceiveWithAuthorization",
    from: KeyedAccount,
    to: Address,
    valueAtomic: bigint,
  ) {
    const message = {
      from: from.address,
      to,
      value: valueAtomic,
      validAfter: 0n,
      validBefore: (await latestTimestamp()) + 3600n,
      nonce: `0x${randomBytes(32).toString("hex")}` as Hex,
    };
    const signature = await privateKeyToAccount(from.privateKey).signTypedData({
      domain: {
        name: "USD Coin",
        version: "2",
        chainId: devnet.chainId,
        verifyingContract: devnet.contracts.usdc,
      },
      types: { [kind]: authorizationTypes.TransferWithAuthorization },
      primaryType: kind,
      message,
    });
    const fields = [
      message.from,
      message.to,
      message.value,
      message.validAfter,
      message.validBefore,
      message.nonce,
    ];
    const { r, s, v } = parseSignature(signature);
    return { message, signature, withBytes: [...fields, signature], withVrs: [...fields, Number(v), r, s] };
  }

  test("looks like USDC: name, symbol, 6 decimals and EIP-712 domain version 2", async () => {
    assert.equal(await read("name"), "USD Coin");
    assert.equal(await read("symbol"), "USDC");
    assert.equal(await read("decimals"), 6);
    assert.equal(await read("version"), "2");
    const expected = domainSeparator({
      domain: {
        name: "USD Coin",
        version: "2",
        chainId: devnet.chainId,
        verifyingContract: devnet.contracts.usdc,
      },
    });
    assert.equal(await read("DOMAIN_SEPARATOR"), expected);
  });

  test("transferWithAuthorization moves funds once, with (v, r, s) or bytes signatures", async () => {
    const payer = devnet.accounts.buyers[0]!;
    const payee = devAccount(8).address;
    const before = await balanceOf(devnet.contracts.usdc, payee);
    const first = await signAuthorization("TransferWithAuthorization", payer, payee, 1_000n);
    await send(devnet.accounts.facilitator, usdcCall("transferWithAuthorization", first.withVrs));
    assert.equal(await read("authorizationState", [payer.address, first.message.nonce]), true);
    assert.equal(
      await revertOf(
        devnet.accounts.facilitator.address,
        usdcCall("transferWithAuthorization", first.withBytes),
      ),
      "FiatTokenV2: authorization is used or canceled",
    );
    const second = await signAuthorization("TransferWithAuthorization", payer, payee, 2_000n);
    await send(devnet.accounts.facilitator, usdcCall("transferWithAuthorization", second.withBytes));
    assert.equal(await balanceOf(devnet.contracts.usdc, payee), before + 3_000n);
  });

  test("receiveWithAuthorization is for the payee only; cancelAuthorization voids an unused one", async () => {
    const payer = devnet.accounts.buyers[0]!;
    const payee = devAccount(8);
    const received = await signAuthorization("ReceiveWithAuthorization", payer, payee.address, 1_000n);
    assert.equal(
      await revertOf(
        devnet.accounts.facilitator.address,
        usdcCall("receiveWithAuthorization", received.withVrs),
      ),
      "FiatTokenV2: caller must be the payee",
    );
    await send(payee, usdcCall("receiveWithAuthorization", received.withVrs));

    const canceled = await signAuthorization("TransferWithAuthorization", payer, payee.address, 1_000n);
    const cancelSignature = await privateKeyToAccount(payer.privateKey).signTypedData({
      domain: {
        name: "USD Coin",
        version: "2",
        chainId: devnet.chainId,
        verifyingContract: devnet.contracts.usdc,
      },
      types: {
        CancelAuthorization: [
          { name: "authorizer", type: "address" },
          { name: "nonce", type: "bytes32" },
        ],
      },
      primaryType: "CancelAuthorization",
      message: { authorizer: payer.address, nonce: canceled.message.nonce },
    });
    await send(
      payee,
      usdcCall("cancelAuthorization", [payer.address, canceled.message.nonce, cancelSignature]),
    );
    assert.equal(
      await revertOf(payee.address, usdcCall("transferWithAuthorization", canceled.withBytes)),
      "FiatTokenV2: authorization is used or canceled",
    );
  });

  test("only the deployer may mint", async () => {
    const stranger = devAccount(8).address;
    assert.equal(
      await revertOf(stranger, usdcCall("mint", [stranger, 1n])),
      "TestUSDC: caller is not the minter",
    );
  });
});
