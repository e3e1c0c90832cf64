import type { FacilitatorEvmSigner } from "@x402/evm";
import {
  type Abi,
  type Address,
  concat,
  createPublicClient,
  encodeFunctionData,
  type Hex,
  http,
  keccak256,
  type PublicClient,
  recoverTypedDataAddress,
  type TransactionReceipt,
  WaitForTransactionReceiptTimeoutError,
} from "viem";
import { type Logger, silentLogger } from "../errors/index.js";
import { broadcastTransaction } from "./broadcastTransaction.js";
import { createNodeHttpFetch } from "./createNodeHttpFetch.js";
import { createNonceManager } from "./createNonceManager.js";
import { permit2AndTokenErrorsAbi } from "./permit2Errors.js";
import { privateKeyAccount } from "./privateKeyAccount.js";
import { isTransportError, recordRpcTransportFailure } from "./rpcFailures.js";

/** Most JSON-RPC calls in one batch request (providers cap batches; 20 fits the common limits). */
const RPC_BATCH_SIZE = 20;

export type CreateFacilitatorSignerParameters = {
  rpcUrl: string;
  privateKey: Hex;
  chainId: number;
  /** How often to poll for receipts (ms); small on a local chain, ~1 s on a public one. */
  pollingIntervalMs?: number;
  /** How long to wait for a receipt before giving up (ms). */
  receiptTimeoutMs?: number;
  /** Timeout of one RPC request (ms). */
  rpcTimeoutMs?: number;
  /**
   * Calls made while others are in flight go out together as one JSON-RPC batch (default true): under
   * concurrency a third less CPU per verification. Turn off for an RPC endpoint that refuses batches.
   */
  rpcBatch?: boolean;
  logger?: Logger;
};

/** The facilitator signer x402 expects, plus what Tollgate needs around it. */
export type TollgateFacilitatorSigner = FacilitatorEvmSigner & {
  address: Address;
  publicClient: PublicClient;
  /** Sends native currency from the facilitator (through its nonce manager), e.g. a sponsored approval's gas. */
  sendValue(args: { to: Address; value: bigint }): Promise<Hex>;
  /** The receipt of a transaction this signer waited for (kept until taken). */
  takeReceipt(hash: Hex): TransactionReceipt | undefined;
  /**
   * The native balance (read at most once a second, or now when `fresh`), and what `gas` costs at the
   * current fees: can this key send a transaction that uses it?
   */
  gasFunds(gas: bigint, options?: { fresh?: boolean }): Promise<{ balanceWei: bigint; neededWei: bigint }>;
};

/**
 * A facilitator signer for `@x402/evm`'s schemes, built on viem with a local key.
 *
 * What the plain wallet-client signer lacks, and this one has: one transaction-nonce manager
 * (concurrent settles from one key never collide), reads made *from* the facilitator address
 * (the upto proxy only lets `witness.facilitator` settle, and simulations must say so), local
 * signature recovery before any RPC round trip, and transport failures recorded so an
 * unreachable chain is not mistaken for a bad payment.
 */
export function createFacilitatorSigner({
  rpcUrl,
  privateKey,
  chainId,
  pollingIntervalMs = 250,
  receiptTimeoutMs = 60_000,
  rpcTimeoutMs = 10_000,
  rpcBatch = true,
  logger = silentLogger,
}: CreateFacilitatorSignerParameters): TollgateFacilitatorSigner {
  const account = privateKeyAccount(privateKey);
  // node:http keep-alive instead of the global fetch: a third of the CPU per RPC call.
  const fetchFn = createNodeHttpFetch();
  const clientOf = (batch: boolean) =>
    createPublicClient({
      transport: http(rpcUrl, {
        timeout: rpcTimeoutMs,
        retryCount: 1,
        fetchFn,
        batch: batch ? { batchSize: RPC_BATCH_SIZE } : false,
      }),
      pollingInterval: pollingIntervalMs,
    }) as PublicClient;
  const publicClient = clientOf(false);
  // A call made while others are in flight joins the next batch (one HTTP exchange for all); a lone call goes
  // out at once, so batching never delays a request that has nothing to share its round trip with.
  const batchedClient = rpcBatch ? clientOf(true) : publicClient;
  let callsInFlight = 0;
  const nonces = createNonceManager({ address: account.address, publicClient });
  const receipts = new Map<Hex, TransactionReceipt>();
  let balanceCache: { at: number; balance: Promise<bigint> } | undefined;
  let feeCache:
    | { at: number; fees: Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> }
    | undefined;

  /** Records a transport failure in the caller's scope, so an outage is not mistaken for a bad payment. */
  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      if (isTransportError(error)) recordRpcTransportFailure(error);
      throw error;
    }
  };
  /** One read-only call: batched with the others in flight, if any. */
  const call = async <T>(fn: (client: PublicClient) => Promise<T>): Promise<T> => {
    const client = callsInFlight > 0 ? batchedClient : publicClient;
    callsInFlight++;
    try {
      return await guard(() => fn(client));
    } finally {
      callsInFlight--;
    }
  };

  const fees = () => {
    const now = Date.now();
    if (!feeCache || now - feeCache.at > 2_000) {
      const pending = publicClient.estimateFeesPerGas().then((estimate) => ({
        maxFeePerGas: estimate.maxFeePerGas ?? 0n,
        maxPriorityFeePerGas: estimate.maxPriorityFeePerGas ?? 0n,
      }));
      feeCache = { at: now, fees: pending };
      pending.catch(() => {
        feeCache = undefined;
      });
    }
    return feeCache.fees;
  };

  // Read at most once a second: checked before every paid request is served.
  const balance = (fresh = false) => {
    const now = Date.now();
    if (fresh || !balanceCache || now - balanceCache.at > 1_000) {
      const pending = call((client) => client.getBalance({ address: account.address }));
      balanceCache = { at: now, balance: pending };
      pending.catch(() => {
        balanceCache = undefined;
      });
    }
    return balanceCache.balance;
  };

  const send = async ({
    to,
    data,
    gas,
    value,
  }: {
    to: Address;
    data: Hex;
    gas?: bigint;
    value?: bigint;
  }): Promise<Hex> =>
    guard(async () => {
      // Estimating first means a transaction that would revert is never sent and never takes a nonce.
      const [gasLimit, fee] = await Promise.all([
        gas ?? call((client) => client.estimateGas({ account: account.address, to, data, value })),
        fees(),
      ]);
      return nonces.withNonce(async (nonce) => {
        const serialized = await account.signTransaction({
          chainId,
          type: "eip1559",
          to,
          data,
          nonce,
          gas: (gasLimit * 12n) / 10n,
          ...(value === undefined ? {} : { value }),
          ...fee,
        });
        const hash = await broadcastTransaction(publicClient, serialized, (error) =>
          logger.warn(
            {
              hash: keccak256(serialized),
              nonce,
              to,
              err: String((error as Error)?.message ?? error).split("\n")[0],
            },
            "the node answered a transaction with an error, but it has the transaction: it was sent",
          ),
        );
        logger.debug({ hash, nonce, to }, "transaction sent");
        return hash;
      });
    });

  return {
    address: account.address,
    publicClient,
    getAddresses: () => [account.address],
    readContract: ({ address, abi, functionName, args }) =>
      call((client) =>
        client.readContract({
          account: account.address,
          address,
          abi: [...(abi as Abi), ...permit2AndTokenErrorsAbi],
          functionName,
          args,
        } as Parameters<PublicClient["readContract"]>[0]),
      ),
    async verifyTypedData({ address, domain, types, primaryType, message, signature }) {
      const typedData = { domain, types, primaryType, message } as Parameters<
        typeof recoverTypedDataAddress
      >[0];
      try {
        const recovered = await recoverTypedDataAddress({ ...typedData, signature });
        if (recovered.toLowerCase() === address.toLowerCase()) return true;
      } catch {
        // Not a plain ECDSA signature: a smart wallet's (ERC-1271 / ERC-6492) is checked on chain below.
      }
      const code = await call((client) => client.getCode({ address }));
      if (!code || code === "0x") return false;
      return call((client) =>
        client.verifyTypedData({ ...typedData, address, signature } as Parameters<
          PublicClient["verifyTypedData"]
        >[0]),
      );
    },
    writeContract: ({ address, abi, functionName, args, gas, dataSuffix }) => {
      const data = encodeFunctionData({ abi: abi as Abi, functionName, args } as Parameters<
        typeof encodeFunctionData
      >[0]);
      return send({ to: address, data: dataSuffix ? concat([data, dataSuffix]) : data, gas });
    },
    sendTransaction: ({ to, data }) => send({ to, data }),
    sendValue: ({ to, value }) => send({ to, data: "0x", value }),
    async waitForTransactionReceipt({ hash, timeout }) {
      const receipt = await guard(() =>
        publicClient.waitForTransactionReceipt({ hash, timeout: timeout ?? receiptTimeoutMs }),
      ).catch((error: unknown) => {
        // Not mined in time: perhaps dropped by the node, which would hold back every later nonce.
        if (error instanceof WaitForTransactionReceiptTimeoutError) nonces.resync();
        throw error;
      });
      receipts.set(hash, receipt);
      // Bounded: receipts not taken within a minute are dropped.
      setTimeout(() => receipts.delete(hash), 60_000).unref();
      return receipt;
    },
    getCode: ({ address }) => call((client) => client.getCode({ address })),
    async gasFunds(gas, { fresh = false } = {}) {
      const [balanceWei, fee] = await Promise.all([balance(fresh), guard(fees)]);
      // As `send` signs it: the estimate and a fifth more, at the highest fee it offers.
      return { balanceWei, neededWei: ((gas * 12n) / 10n) * fee.maxFeePerGas };
    },
    takeReceipt(hash) {
      const receipt = receipts.get(hash);
      receipts.delete(hash);
      return receipt;
    },
  };
}
