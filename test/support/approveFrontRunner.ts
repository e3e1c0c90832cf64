import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createPublicClient, type Hex, http, parseTransaction } from "viem";
import { privateKeyToAccount } from "viem/accounts";

export type ApproveFrontRunner = {
  /** The relay's URL: give it to the facilitator as its RPC. */
  url: string;
  /**
   * Arms the payer: when the facilitator next broadcasts the payer's signed approve of `token`, the
   * payer's own transaction on the approve's nonce (the funded gas sent to `sink`) is mined first.
   * Answers the hash of that transaction once it ran, or undefined if it never did.
   */
  arm(payer: { privateKey: Hex; address: Hex }, token: Hex, sink: Hex): () => Hex | undefined;
  /** Holds the next broadcast approve of `token` for `ms` before it reaches the chain (a slow chain). */
  delayNextApprove(token: Hex, ms: number): void;
  /**
   * A node that takes a transaction and answers an error: every transaction sent to `payer` (its gas
   * funding) reaches the chain, and the facilitator is answered a JSON-RPC internal error. Until the
   * returned function is called.
   */
  failFundingAnswers(payer: Hex): () => void;
  close(): Promise<void>;
};

/**
 * A JSON-RPC relay between a facilitator and the chain, through which a test plays a hostile payer that
 * sees the gas funded for its approve land, and spends it on the approve's nonce before the approve.
 */
export async function startApproveFrontRunner(rpcUrl: string): Promise<ApproveFrontRunner> {
  const chain = createPublicClient({ transport: http(rpcUrl) });
  let onBroadcast: ((raw: Hex) => Promise<void>) | undefined;
  let answerFailed: Hex | undefined;
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const parsed = JSON.parse(body) as
      | { method?: string; params?: unknown[] }
      | Array<{ method?: string; params?: unknown[] }>;
    for (const call of Array.isArray(parsed) ? parsed : [parsed])
      if (call.method === "eth_sendRawTransaction" && onBroadcast) await onBroadcast(call.params?.[0] as Hex);
    const upstream = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const answer = await upstream.text();
    const sent = Array.isArray(parsed) ? undefined : parsed;
    if (
      answerFailed &&
      sent?.method === "eth_sendRawTransaction" &&
      parseTransaction(sent.params?.[0] as Hex).to?.toLowerCase() === answerFailed.toLowerCase()
    ) {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(
        JSON.stringify({
          jsonrpc: "2.0",
          id: (sent as { id?: unknown }).id,
          error: { code: -32603, message: "Internal error" },
        }),
      );
      return;
    }
    response.writeHead(upstream.status, { "content-type": "application/json" });
    response.end(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arm(payer, token, sink) {
      const account = privateKeyToAccount(payer.privateKey);
      let frontRan: Hex | undefined;
      onBroadcast = async (raw) => {
        const approve = parseTransaction(raw);
        if (approve.to?.toLowerCase() !== token.toLowerCase()) return;
        onBroadcast = undefined;
        const fee = approve.maxFeePerGas ?? 0n;
        const balance = await chain.getBalance({ address: payer.address });
        const own = await account.signTransaction({
          type: "eip1559",
          chainId: approve.chainId ?? 31337,
          nonce: approve.nonce ?? 0,
          to: sink,
          value: balance - 21_000n * fee,
          gas: 21_000n,
          maxFeePerGas: fee,
          maxPriorityFeePerGas: approve.maxPriorityFeePerGas ?? 0n,
        });
        frontRan = await chain.sendRawTransaction({ serializedTransaction: own });
        await chain.waitForTransactionReceipt({ hash: frontRan });
      };
      return () => frontRan;
    },
    delayNextApprove(token, ms) {
      onBroadcast = async (raw) => {
        if (parseTransaction(raw).to?.toLowerCase() !== token.toLowerCase()) return;
        onBroadcast = undefined;
        await new Promise((resolve) => setTimeout(resolve, ms));
      };
    },
    failFundingAnswers(payer) {
      answerFailed = payer;
      return () => {
        answerFailed = undefined;
      };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
