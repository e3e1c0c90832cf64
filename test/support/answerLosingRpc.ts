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
 * as a load balancer or a timeout does.
 */
export async function startAnswerLosingRpc(
  target: string,
  lose: (call: { method: string; params: unknown[] }) => boolean,
): Promise<AnswerLosingRpc> {
  let lost = 0;
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
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
