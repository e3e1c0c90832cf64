import { PERMIT2_ADDRESS } from "@x402/evm";
import type { Erc20ApprovalGasSponsoringSigner, TransactionRequest } from "@x402/extensions";
import {
  decodeFunctionData,
  erc20Abi,
  type Hex,
  keccak256,
  maxUint256,
  parseTransaction,
  recoverTransactionAddress,
  type TransactionReceipt,
} from "viem";
import { broadcastTransaction, isTransportError, type TollgateFacilitatorSigner } from "../chain/index.js";
import { SponsoredApprovalRefused } from "./gasSponsoring.js";

/**
 * What one sponsored `approve` cost the facilitator: the gas it sent the buyer, and the approval's own gas.
 * `relayed` is false for a settlement sent alone because an earlier one of the payer already relayed that
 * same approve: it cost nothing more and is no sponsored approval.
 */
export type Erc20ApprovalSponsorship = {
  relayed: boolean;
  payer: Hex;
  fundingTx: Hex | undefined;
  fundedWei: bigint;
  approveTx: Hex;
  approveGasUsed: bigint;
  approveGasCostWei: bigint;
  fundingGasCostWei: bigint;
};

/**
 * The signer `erc20ApprovalGasSponsoring` needs, and `relayApprovalAlone`: the approve funded and relayed
 * alone, before the payment it came with is served (its settlement then goes alone); see `relayAlone`.
 */
export type Erc20ApprovalSponsor = Erc20ApprovalGasSponsoringSigner & {
  simulateTransactions(transactions: TransactionRequest[]): Promise<boolean>;
  relayApprovalAlone(
    approval: Hex,
    leastAtomic: bigint,
    signal?: AbortSignal,
  ): Promise<Erc20ApprovalSponsorship | undefined>;
};

/** What a funded and relayed approve cost: the gas sent for it, and the approve's own receipt. */
function relayedSponsorship(
  payer: Hex,
  funding: { fundingTx: Hex | undefined; fundedWei: bigint; fundingGasCostWei: bigint },
  approveTx: Hex,
  approved: TransactionReceipt,
): Erc20ApprovalSponsorship {
  return {
    relayed: true,
    payer,
    ...funding,
    approveTx,
    approveGasUsed: approved.gasUsed,
    approveGasCostWei: approved.gasUsed * approved.effectiveGasPrice,
  };
}

/** Gas an `approve` may ask for: a token's approve takes 25k–60k. */
export const APPROVE_GAS_LIMIT = 120_000n;
/** How far above the chain's current fee estimate the approval's max fee may go. */
const FEE_HEADROOM = 3n;

/**
 * The signer `@x402/extensions`' `erc20ApprovalGasSponsoring` needs: `sendTransactions` receives the
 * buyer's signed `approve(Permit2, max)` and the settlement call. It sends the buyer exactly the gas
 * the signed transaction may burn (limit × max fee, less what the buyer holds), broadcasts the
 * approval, waits for it, then sends the settlement from the facilitator. Before any gas is sent, the
 * approval and the settlement are simulated together, and the payer's sponsorship is counted as the gas
 * goes out (a settlement that fails afterwards still counts). Sequential, not atomic:
 * on a public chain a bundle (or a smart account) would keep the funding from being front-run.
 * One payer's settlements go one at a time; one whose approve's nonce is already spent (an earlier one
 * relayed it, or another signed on that nonce) is sent alone when the allowance that stands settles it,
 * with no gas sent to the buyer. `sponsored` receives the cost of each approval, keyed by the settlement's hash. What is funded is
 * bounded before anything is sent (`check`, see `createApprovalCheck`); otherwise nothing is sent and
 * the settle fails.
 * @see https://github.com/x402-foundation/x402/blob/main/specs/extensions/erc20_approval_gas_sponsoring.md
 */
export function createErc20ApprovalSponsor({
  signer,
  sponsored,
  funding,
  check,
}: {
  signer: TollgateFacilitatorSigner;
  sponsored: (settleTx: Hex, cost: Erc20ApprovalSponsorship) => void;
  /**
   * Called as gas is about to be sent to `payer`: the sponsorship counts from here, whatever follows,
   * unless the funding surely never went out (the node answered an error, and the facilitator's count of
   * sent transactions did not move: then `giveBack`). Throws (and nothing is sent) when the payer may
   * have no more.
   */
  funding: (payer: Hex) => Promise<{ giveBack(): Promise<void> }>;
  /** Why the signed approval may not be funded (`createApprovalCheck`), or undefined. */
  check: (signedApproval: Hex) => Promise<string | undefined>;
}): Erc20ApprovalSponsor {
  const { publicClient } = signer;
  const waitFor = async (hash: Hex): Promise<TransactionReceipt> => {
    const receipt = (await signer.waitForTransactionReceipt({ hash })) as TransactionReceipt;
    if (receipt.status !== "success") throw new Error(`transaction ${hash} reverted`);
    return receipt;
  };
  /**
   * Why the approval, then the settlement, would not both succeed on the chain's current state (one
   * simulated block, `eth_simulateV1`), or undefined when they would: a settlement that would revert
   * after the approval (a Permit2 nonce the payer spent, say) is refused before any gas is sent. An RPC
   * that cannot simulate refuses too, saying so.
   */
  const simulationRefusal = async (
    approval: Hex,
    settlement: { to: Hex; data: Hex },
    { alone = false }: { alone?: boolean } = {},
  ): Promise<string | undefined> => {
    try {
      const parsed = parseTransaction(approval);
      if (!parsed.to) return "the approval names no token contract";
      const payer = await recoverTransactionAddress({ serializedTransaction: approval as never });
      const [facilitator] = signer.getAddresses();
      const settle = { account: facilitator, to: settlement.to, data: settlement.data };
      const [block] = await publicClient.simulateBlocks({
        blocks: [
          {
            calls: alone
              ? [settle]
              : [
                  { account: payer, to: parsed.to, data: parsed.data ?? "0x", value: parsed.value ?? 0n },
                  settle,
                ],
          },
        ],
      });
      if (block?.calls.every((call) => call.status === "success")) return undefined;
      return "the settlement would fail after it (simulated), so no gas is sent";
    } catch (error) {
      const why = String((error as Error)?.message ?? error).split("\n")[0];
      return `the RPC could not simulate it with eth_simulateV1 (${why}); relaying approvals needs an RPC that answers eth_simulateV1`;
    }
  };
  /**
   * Sends the payer the gas its signed approve may burn (limit × max fee), less what it holds: what was
   * sent, and what sending it cost.
   */
  const fundApprovalGas = async (parsed: ReturnType<typeof parseTransaction>, payer: Hex) => {
    const maxCostWei = (parsed.gas ?? 0n) * (parsed.maxFeePerGas ?? parsed.gasPrice ?? 0n);
    const balanceWei = await publicClient.getBalance({ address: payer });
    const fundedWei = maxCostWei > balanceWei ? maxCostWei - balanceWei : 0n;
    if (fundedWei === 0n) return { fundingTx: undefined, fundedWei, fundingGasCostWei: 0n };
    const sentCount = () =>
      publicClient.getTransactionCount({ address: signer.address, blockTag: "pending" });
    const sentBefore = await sentCount();
    const counted = await funding(payer);
    let fundingTx: Hex;
    try {
      fundingTx = await signer.sendValue({ to: payer, value: fundedWei });
    } catch (error) {
      // Without an answer the funding may have gone out, and it counts.
      if (isTransportError(error)) throw error;
      // An error answer does not say nothing went out: a node may take a transaction and answer an
      // error (a send retried after a timeout, a provider's internal error). The payer's sponsorship is
      // given back only when the facilitator's count of sent transactions did not move (a settlement
      // sent beside it moves it too: then it stays counted, at the payer's expense, not the seller's).
      const sentAfter = await sentCount().catch(() => undefined);
      const nothingSent = sentAfter === sentBefore;
      if (nothingSent) await counted.giveBack().catch(() => undefined);
      throw new SponsoredApprovalRefused(
        nothingSent
          ? "the sponsored approval is not relayed: this facilitator could not send the gas for it, so nothing was sent and nothing counts against the payer's sponsored approvals; pay again later, or approve Permit2 from the wallet itself"
          : "the sponsored approval is not relayed: the gas for it may have reached the wallet, and the approve was not sent; it counts against the payer's sponsored approvals: pay again later, or approve Permit2 from the wallet itself",
        { cause: error },
      );
    }
    const funded = await waitFor(fundingTx);
    return { fundingTx, fundedWei, fundingGasCostWei: funded.gasUsed * funded.effectiveGasPrice };
  };
  /** Settlements waiting, per payer, for the one before them to end. */
  const payerTurns = new Map<string, Promise<unknown>>();
  /**
   * Whether the payer's account nonce is past the approve's: an earlier settlement relayed it (or one
   * signed on the same nonce with other fees, as requests sent at once may be), or the payer spent it.
   */
  const approvalNonceSpent = async (approval: Hex): Promise<boolean> => {
    const parsed = parseTransaction(approval);
    const payer = await recoverTransactionAddress({ serializedTransaction: approval as never });
    const sent = await publicClient.getTransactionCount({ address: payer, blockTag: "latest" });
    return parsed.nonce !== undefined && sent > parsed.nonce;
  };
  /**
   * Funds and relays the approve, then sends the settlement. An approve whose nonce is already spent, or
   * whose settlement succeeds without it, is not relayed and gets no gas: the settlement goes alone, if it
   * succeeds on the allowance that stands.
   */
  const relay = async (approval: Hex, settlement: { to: Hex; data: Hex }): Promise<Hex[]> => {
    const nonceSpent = await approvalNonceSpent(approval).catch(() => false);
    // A settlement the allowance that stands already covers needs no approve: none is funded or relayed.
    const unsimulatedAlone = await simulationRefusal(approval, settlement, { alone: true });
    if (nonceSpent || unsimulatedAlone === undefined) {
      if (unsimulatedAlone)
        throw new Error(
          `the sponsored approval is refused: its nonce is spent, and ${unsimulatedAlone.replace("after it ", "on the allowance that stands ")}`,
        );
      const payer = await recoverTransactionAddress({ serializedTransaction: approval as never });
      const settleTx = await signer.sendTransaction({ to: settlement.to, data: settlement.data });
      sponsored(settleTx, {
        relayed: false,
        payer,
        fundingTx: undefined,
        fundedWei: 0n,
        approveTx: keccak256(approval),
        approveGasUsed: 0n,
        approveGasCostWei: 0n,
        fundingGasCostWei: 0n,
      });
      return [keccak256(approval), settleTx];
    }
    const refused = await check(approval);
    if (refused) throw new Error(`the sponsored approval is refused: ${refused}`);
    // Whatever verify saw, the chain may have moved since: checked again right before gas is sent.
    const unsimulated = await simulationRefusal(approval, settlement);
    if (unsimulated) throw new Error(`the sponsored approval is refused: ${unsimulated}`);
    const parsed = parseTransaction(approval);
    const payer = await recoverTransactionAddress({ serializedTransaction: approval as never });
    const { fundingTx, fundedWei, fundingGasCostWei } = await fundApprovalGas(parsed, payer);
    const approveTx = await broadcastTransaction(publicClient, approval);
    const approved = await waitFor(approveTx);
    const settleTx = await signer.sendTransaction({ to: settlement.to, data: settlement.data });
    sponsored(
      settleTx,
      relayedSponsorship(payer, { fundingTx, fundedWei, fundingGasCostWei }, approveTx, approved),
    );
    return [approveTx, settleTx];
  };
  /** Runs `work` after the payer's earlier settlements and relays here have ended. */
  const inPayerTurn = <T>(payer: Hex | undefined, work: () => Promise<T>): Promise<T> => {
    if (payer === undefined) return work();
    const key = payer.toLowerCase();
    const before = payerTurns.get(key) ?? Promise.resolve();
    const turn = before.then(work);
    const ended = turn.catch(() => undefined);
    payerTurns.set(key, ended);
    void ended.then(() => {
      if (payerTurns.get(key) === ended) payerTurns.delete(key);
    });
    return turn;
  };
  /**
   * Funds and relays the approve alone, before the seller serves the payment it came with: a payer that
   * spends the funded gas on its approve's nonce then gets a refusal, not the request. An approve whose
   * nonce is already spent (relayed for an earlier payment of the payer) needs nothing more, if Permit2's
   * allowance stands at `leastAtomic` or more; nor does any approve while that allowance stands. Answers what was paid for it, or undefined when nothing was.
   * Once `signal` aborts (the seller gave up on the request), nothing is funded: an approve whose gas went
   * out is still relayed, so that the gas buys the approval it was sent for.
   */
  const relayAlone = async (
    approval: Hex,
    leastAtomic: bigint,
    signal: AbortSignal | undefined,
  ): Promise<Erc20ApprovalSponsorship | undefined> => {
    const parsed = parseTransaction(approval);
    const payer = await recoverTransactionAddress({ serializedTransaction: approval as never });
    if (!parsed.to)
      throw new SponsoredApprovalRefused("the sponsored approval is refused: it names no token contract");
    const token = parsed.to;
    const allowance = () =>
      publicClient.readContract({
        address: token,
        abi: erc20Abi,
        functionName: "allowance",
        args: [payer, PERMIT2_ADDRESS as Hex],
      });
    if (await approvalNonceSpent(approval)) {
      const standing = await allowance();
      if (standing < leastAtomic)
        throw new SponsoredApprovalRefused(
          `the sponsored approval is refused: its nonce is spent by another transaction of the payer, and Permit2 may draw only ${standing} of the ${leastAtomic} this payment may cost`,
        );
      return undefined;
    }
    // Permit2 may already draw all this payment may cost: the approve is not needed, and gets no gas.
    if ((await allowance()) >= leastAtomic) return undefined;
    const refused = await check(approval);
    if (refused) throw new SponsoredApprovalRefused(`the sponsored approval is refused: ${refused}`);
    if (signal?.aborted)
      throw new SponsoredApprovalRefused(
        "the sponsored approval is not relayed: the request it came with was given up",
      );
    const { fundingTx, fundedWei, fundingGasCostWei } = await fundApprovalGas(parsed, payer);
    let approveTx: Hex;
    let approved: TransactionReceipt;
    try {
      approveTx = await broadcastTransaction(publicClient, approval);
      approved = await waitFor(approveTx);
    } catch (error) {
      // The node's answer stays in the log (`cause`); the buyer is told what happened, in words.
      const ownMined = await publicClient.getTransactionReceipt({ hash: keccak256(approval) }).then(
        () => true,
        () => false,
      );
      const nonceTaken = !ownMined && (await approvalNonceSpent(approval).catch(() => false));
      throw new SponsoredApprovalRefused(
        nonceTaken
          ? "the sponsored approval is refused: its gas was sent, and another transaction of the payer on the approve's nonce went first, so the approve did not land; approve Permit2 from the wallet itself"
          : "the sponsored approval is refused: its gas was sent, and the approve did not land in time; pay again later (a payment of the wallet's, once its approve lands, needs none), or approve Permit2 from the wallet itself",
        { cause: error },
      );
    }
    const standing = await allowance();
    if (standing < leastAtomic)
      throw new SponsoredApprovalRefused(
        `the sponsored approval is refused: after it, Permit2 may draw only ${standing} of the ${leastAtomic} this payment may cost`,
      );
    return relayedSponsorship(payer, { fundingTx, fundedWei, fundingGasCostWei }, approveTx, approved);
  };
  const sponsor: Erc20ApprovalSponsor = {
    getAddresses: signer.getAddresses,
    readContract: signer.readContract as Erc20ApprovalGasSponsoringSigner["readContract"],
    verifyTypedData: signer.verifyTypedData as Erc20ApprovalGasSponsoringSigner["verifyTypedData"],
    writeContract: signer.writeContract as Erc20ApprovalGasSponsoringSigner["writeContract"],
    sendTransaction: signer.sendTransaction,
    waitForTransactionReceipt:
      signer.waitForTransactionReceipt as Erc20ApprovalGasSponsoringSigner["waitForTransactionReceipt"],
    getCode: signer.getCode,
    async sendTransactions(transactions: TransactionRequest[]): Promise<Hex[]> {
      const [approval, settlement] = transactions;
      if (typeof approval !== "string" || settlement === undefined || typeof settlement === "string")
        throw new Error("expected a signed approval and a settlement call");
      const payer = await recoverTransactionAddress({ serializedTransaction: approval as never }).catch(
        () => undefined,
      );
      // One payer's settlements run one at a time here: requests sent at once each carry the same signed
      // approve, and each would otherwise fund it again and fail to relay it (its nonce spent by the first).
      return inPayerTurn(payer, () => relay(approval as Hex, settlement as { to: Hex; data: Hex }));
    },
    async relayApprovalAlone(approval: Hex, leastAtomic: bigint, signal?: AbortSignal) {
      const payer = await recoverTransactionAddress({ serializedTransaction: approval as never }).catch(
        () => undefined,
      );
      if (payer === undefined)
        throw new SponsoredApprovalRefused(
          "the sponsored approval is refused: it is not a signed transaction",
        );
      return inPayerTurn(payer, () => relayAlone(approval, leastAtomic, signal));
    },
    /**
     * Read by `@x402/evm` at verify (it looks for the method): a payment whose settlement would fail
     * after its approval is refused there, before the seller serves anything.
     */
    async simulateTransactions(transactions: TransactionRequest[]): Promise<boolean> {
      const [approval, settlement] = transactions;
      if (typeof approval !== "string" || settlement === undefined || typeof settlement === "string")
        return false;
      return (await simulationRefusal(approval as Hex, settlement as { to: Hex; data: Hex })) === undefined;
    },
  };
  return sponsor;
}

/**
 * Checks a buyer's signed `approve` before its gas is funded: signed for this chain, carrying the
 * payer's next nonce, asking at most `APPROVE_GAS_LIMIT` gas, the payer within its sponsorship limit
 * (`refusal`), and, with `fee`, a max fee no more than 3× the chain's current estimate. Answers why not,
 * or undefined. Verify checks it all; settle skips the fee for an approval verify passed (fees move
 * while a request is served), not for one it never saw.
 */
export function createApprovalCheck({
  publicClient,
  chainId,
  refusal,
}: {
  publicClient: TollgateFacilitatorSigner["publicClient"];
  chainId: number;
  refusal: (payer: Hex) => Promise<string | undefined>;
}) {
  return async (signedApproval: Hex, { fee }: { fee: boolean }): Promise<string | undefined> => {
    let parsed: ReturnType<typeof parseTransaction>;
    let payer: Hex;
    try {
      parsed = parseTransaction(signedApproval);
      payer = await recoverTransactionAddress({ serializedTransaction: signedApproval as never });
    } catch {
      return "it is not a signed transaction";
    }
    const denied = await refusal(payer);
    if (denied) return denied;
    if (parsed.chainId !== chainId) return `it is signed for chain ${parsed.chainId}, not ${chainId}`;
    // One relayed approve serves every payment of the payer that carries it, sent at once or later: a
    // bounded one could be spent by the first of them, and the others then fail after being served.
    const approvedAtomic = approveArgsOf(parsed.data)?.amount;
    if (approvedAtomic !== maxUint256)
      return `it approves ${approvedAtomic ?? "no readable amount"}, not the unlimited amount (2^256 − 1) a relayed approve of Permit2 must: sign approve(Permit2, max)`;
    if ((parsed.gas ?? 0n) > APPROVE_GAS_LIMIT)
      return `it asks for ${parsed.gas} gas, above the ${APPROVE_GAS_LIMIT} an approve needs`;
    const nextNonce = await publicClient.getTransactionCount({ address: payer, blockTag: "pending" });
    if (parsed.nonce !== nextNonce) return `its nonce ${parsed.nonce} is not the payer's next, ${nextNonce}`;
    if (!fee) return undefined;
    const fees = await publicClient.estimateFeesPerGas();
    const currentWei = fees.maxFeePerGas ?? fees.gasPrice ?? 0n;
    const askedWei = parsed.maxFeePerGas ?? parsed.gasPrice ?? 0n;
    if (askedWei > currentWei * FEE_HEADROOM)
      return `its fee of ${askedWei} wei per gas is above ${FEE_HEADROOM}× the chain's current ${currentWei}`;
    return undefined;
  };
}

/**
 * Why a signed approve is not the one its payment needs, or undefined when it is: the payer's own
 * `approve(Permit2, …)` on the payment's token, beside a payment that draws through Permit2. Any other
 * (another wallet's, another token's or contract's, another spender's, or one beside an EIP-3009 transfer,
 * which draws on no allowance) would have the facilitator fund gas for a transaction its payment never uses.
 */
export async function approvalMismatch(
  signedApproval: Hex,
  {
    payer,
    asset,
    drawsThroughPermit2,
  }: { payer: string | undefined; asset: string; drawsThroughPermit2: boolean },
): Promise<string | undefined> {
  if (!drawsThroughPermit2)
    return "this payment draws nothing through Permit2 (an EIP-3009 transfer needs no approval), so no approve is relayed for it";
  let parsed: ReturnType<typeof parseTransaction>;
  let signer: Hex;
  try {
    parsed = parseTransaction(signedApproval);
    signer = await recoverTransactionAddress({ serializedTransaction: signedApproval as never });
  } catch {
    return "it is not a signed transaction";
  }
  if (payer === undefined || signer.toLowerCase() !== payer.toLowerCase())
    return `it is signed by ${signer}, not by the payment's payer ${payer ?? "(none named)"}`;
  if (parsed.to?.toLowerCase() !== asset.toLowerCase())
    return `it calls ${parsed.to ?? "no contract"}, not the payment's token ${asset}`;
  const spender = approveArgsOf(parsed.data)?.spender;
  if (spender?.toLowerCase() !== PERMIT2_ADDRESS.toLowerCase())
    return `it approves ${spender ?? "no readable spender"}, not Permit2 (${PERMIT2_ADDRESS})`;
  return undefined;
}

/** The spender and amount an `approve(spender, amount)` call names, or undefined when it is no such call. */
function approveArgsOf(data: Hex | undefined): { spender: Hex; amount: bigint } | undefined {
  try {
    const decoded = decodeFunctionData({ abi: erc20Abi, data: data ?? "0x" });
    return decoded.functionName === "approve"
      ? { spender: decoded.args[0], amount: decoded.args[1] }
      : undefined;
  } catch {
    return undefined;
  }
}
