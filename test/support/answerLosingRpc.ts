import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export type AnswerLosingRpc = {
  url: string;
  /** How many answers were lost. */
  lost(): number;
  close(): Promise<void>;
};

/**
 * A JSON-RPC relay in front of a chain's node that passes every call to the node, and loses the node's
 * answer (502 to the caller) to the first call `lose` picks: the node took it, the caller is told an error,
 * as a load balancer or a timeout does. With `unseenLookups`, that many lookups of a transaction by hash
 * after it are answered "no such transaction", as a node behind the balancer it has not reached yet.
 */
export async function startAnswerLosingRpc(
  target: string,
  lose: (call: { method: string; params: unknown[] }) => boolean,
  { unseenLookups = 0 }: { unseenLookups?: number } = {},
): Promise<AnswerLosingRpc> {
  let lost = 0;
  let hidden = 0;
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    const single = JSON.parse(body) as { id?: unknown; method?: string };
    if (lost > 0 && hidden < unseenLookups && single.method === "eth_getTransactionByHash") {
      hidden++;
      response
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ jsonrpc: "2.0", id: single.id, result: null }));
      return;
    }
    try {
      const upstream = await fetch(target, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const text = await upstream.text();
      const calls = [JSON.parse(body)].flat() as { method: string; params: unknown[] }[];
      if (lost === 0 && calls.some(lose)) {
        lost++;
        response.writeHead(502).end("bad gateway");
        return;
      }
      response.writeHead(upstream.status, { "content-type": "application/json" }).end(text);
    } catch {
      response.writeHead(502).end("node unreachable");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    lost: () => lost,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
